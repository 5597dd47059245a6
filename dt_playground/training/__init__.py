"""Training: the trainer, its device-specific step, and a DT's separate return model."""
