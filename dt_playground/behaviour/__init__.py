"""Behaviour policies (heuristics, ARS snapshots) and the datasets collected with them."""
