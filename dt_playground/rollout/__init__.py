"""Return-conditioned rollouts (batched, lock-step), evaluation sweeps and the metrics that
judge them.
"""
