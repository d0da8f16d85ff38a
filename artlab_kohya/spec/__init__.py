"""The spec: schema (model.py), reading with located errors (load.py), cross-field rules (rules.py)."""

from .load import Issue, LoadedSpec, SpecError, load_spec
from .model import Spec

__all__ = ["Issue", "LoadedSpec", "Spec", "SpecError", "load_spec"]
