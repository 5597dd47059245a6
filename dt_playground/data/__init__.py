"""Offline data: Minari storage, model-input windows and normalisation, the typed dataset
summary.
"""
