"""The no-GPU demo: synthetic data, the training simulator, degradations."""
