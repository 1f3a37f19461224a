"""Training: pure steps, the Hydra-free job, checkpoints, metrics and plots."""
