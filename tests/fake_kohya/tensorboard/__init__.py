"""Fake tensorboard for tests: the default output.log_with needs it importable in the trainer's Python."""
