"""The stitching lab (issue 22): what Decision Transformers cannot do, and what fixes it."""
