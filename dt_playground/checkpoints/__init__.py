"""Checkpoint folders: layout on disk, save/load (safetensors + JSON), checks before
allocation, uploads, transformers interop, Hub cards.
"""
