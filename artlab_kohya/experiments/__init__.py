"""Experiments: what a person compares once runs exist.

This package owns sweeps (a spec's `matrix:`, expanded by matrix.py, sized by estimate.py, run as a
queue by sweep.py and worker.py), reading run folders back (records.py), the runs table (listing.py),
`show` (show.py), `pick` (pick.py: the rule; choose.py: over a run or a sweep) and the report
(report.py gathers a folder into the dataclasses that html.py and svg.py render). html.py and svg.py
are pure (text in, text out) and import nothing of artlab_kohya. Reading runs must stay fast, so the
modules that list them (records, listing, pick, values) do not import the spec package at import time.
May import run, build, dataset, trainer, models, spec.
"""
