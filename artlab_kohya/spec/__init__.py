"""The spec: schema (model.py), reading with located errors (load.py, yamlpos.py), cross-field rules
(rules.py), the model families and hub aliases (families.py), the guide's numbers (guide.py), the
reference and JSON Schema (reference.py, schema.py) and `init`'s presets (presets.py). The bottom
of the pipeline: imports only settings, files and errors."""

from .load import Issue, LoadedSpec, SpecError, load_spec
from .model import Spec

__all__ = ["Issue", "LoadedSpec", "Spec", "SpecError", "load_spec"]
