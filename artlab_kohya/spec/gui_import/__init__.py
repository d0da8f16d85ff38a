"""A saved Kohya GUI LoRA config (JSON) -> a commented spec, so that the spec runs what the GUI would have run.

Every field of the config ends in the spec (a first-class field, or kohya.extra_args for an sd-scripts argument
the spec does not model) or in the list at the top of the spec with its reason (gui.py). Values come the way
GUI versions wrote them: numbers as strings ("0.0001", "1", ""), old field names, LoRA_type names. The GUI's
own defaults fill the fields a config lacks, as the GUI does when it loads one. Secrets are never copied.

The folders are looked at through the callables the caller passes (`folders`: the N_name subfolders of a
path; `exists`), so that the conversion is a function of its inputs.

One step a module, in the order import_gui() runs them, each reading and writing through a Conversion
(_conversion.py): _model.py, _dataset.py, _network.py, _dit.py (FLUX.1 and SD3), _training.py (optimizer and
training), _output.py (output, sample, launch), _extra.py (fields passed as they are, additional_parameters, the
rest); _text.py writes the result as commented YAML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._conversion import Conversion, Folders, Imported
from ._dataset import dataset as _dataset
from ._dit import dit
from ._extra import extra, rest
from ._model import model as _model
from ._model import refuse_other_families
from ._network import network
from ._output import launch, output, sample
from ._text import spec_text
from ._training import optimizer, training

__all__ = ["Folders", "Imported", "import_gui", "spec_text"]


def import_gui(
    config: dict[str, Any],
    *,
    folders: Folders,
    exists: Callable[[str], bool],
    dataset: str | None = None,
    model: str | None = None,
    components: dict[str, str] | None = None,
) -> Imported:
    """The spec (as YAML data) for a GUI config; raises InputError for a config of a family or network we
    cannot train (HunyuanImage, Anima, Lumina, Chroma, ..., LoRA-FA, Flux1 OFT). `components` names the model's
    other files (FLUX.1/SD3: ae, clip_l, clip_g, t5xxl) over the config's."""
    c = Conversion(config, folders, exists, dataset, model, components)
    refuse_other_families(c)
    family = _model(c)
    _dataset(c)
    network(c)
    dit(c, family)
    optimizer(c)
    training(c)
    output(c)
    sample(c)
    launch(c)
    extra(c, family)
    rest(c)
    return c.out
