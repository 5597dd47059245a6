"""The stitching lab: what Decision Transformers cannot do, and what fixes it."""
