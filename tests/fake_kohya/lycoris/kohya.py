"""Fake lycoris.kohya: see the package docstring."""
