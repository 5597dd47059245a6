"""The Decision Transformer: model, return-distribution head, the per-step acting engine
and its runtime (devices, threads, oneDNN).
"""
