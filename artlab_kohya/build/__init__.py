"""From a validated spec to what the trainer reads: plan.py (step math, saves, LoRA size), render.py
(kohya's dataset.toml and config.toml), command.py (the accelerate command line, pure), inputs.py
(the model, family and repeats that rendering needs, shared by `render` and `run`). Pure where it
can be. May import dataset, trainer (the argument surface), models, spec."""
