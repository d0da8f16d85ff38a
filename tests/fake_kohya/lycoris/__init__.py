"""Fake LyCORIS for tests: importable as the version probe asks (lycoris.kohya), nothing more; a replayed
LyCORIS run (tests/data/transcripts/sd3_locon_tiny_cpu.*) needs no network code."""
