"""Experiments: what a person compares once runs exist.

This package owns sweeps (one spec, several values), the runs table, `pick` (the epoch whose average
loss falls in a window) and the report (`report.html` for a run or a sweep). For now it holds the
report's rendering: `svg` draws charts, `html` turns plain dataclasses into one self-standing page.
Both are pure (text in, text out) and import nothing from the rest of artlab_kohya; whatever reads a
run folder builds their dataclasses and writes the page.
"""
