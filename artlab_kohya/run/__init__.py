"""A training run: train.py tells its story (resolve, write the run folder, train, record); folder.py
owns the run folder's files; display.py shows the trainer's events live; diagnose.py turns how it
ended into one verdict; rerun.py runs a lock again. May import build, dataset, trainer, models, spec."""
