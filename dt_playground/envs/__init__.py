"""Environments: the registry (one place per-env facts live), what an episode is, every
seed range.
"""
