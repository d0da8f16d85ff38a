"""The spec: schema (model.py), reading with located errors (load.py, yamlpos.py), cross-field rules
(rules.py), the model families and hub aliases (families.py), the guide's numbers (guide.py), the
reference and JSON Schema (reference.py, schema.py), `init`'s presets (presets.py), the Kohya GUI's fields
and their mapping (gui.py; gui_import/ reads a GUI config, gui_export.py writes one) and commented YAML
writing (yamlwrite.py). The bottom of the pipeline: imports only settings, files and errors."""

from .load import Issue, LoadedSpec, SpecError, load_spec
from .model import Spec

__all__ = ["Issue", "LoadedSpec", "Spec", "SpecError", "load_spec"]
