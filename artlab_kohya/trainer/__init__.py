"""The trainer, kohya's sd-scripts, as an outside program: install.py finds an install, its commit
and its Python; surface.py knows its arguments; process.py runs it as a process group; output.py
parses what it prints into typed events; doctor.py checks an install; inside/ holds the small
scripts that run in the trainer's own Python (they import nothing of ours). May import models, spec."""
