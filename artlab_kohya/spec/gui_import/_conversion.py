"""The state of one conversion: the config as the GUI reads it, the spec data being written with a comment for
each key, and what is said about the fields that reach no spec field. The steps (_model.py, _dataset.py, ...)
read and write through it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..gui import BY_NAME, SECRET, coerce, renamed, show

Folders = Callable[[str], "list[tuple[str, int]] | None"]  # path -> [(folder name, repeats)], None: unreadable
PathKey = tuple[str | int, ...]
_WINDOWS = re.compile(r"^[A-Za-z]:[\\/]|\\")
# The GUI's presets ship text where a path goes ("put the full path to ae.sft here").
_PLACEHOLDER = re.compile(r"^\s*put\b.*\bhere\b", re.IGNORECASE)


@dataclass
class Imported:
    data: dict[str, Any]
    notes: dict[PathKey, list[str]] = field(default_factory=dict)
    unmapped: list[tuple[str, str, str]] = field(default_factory=list)  # (field, value shown, reason)
    at_default: list[str] = field(default_factory=list)  # fields whose value is sd-scripts' default anyway
    secrets: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Conversion:
    """One config being converted: `get` reads a field as the GUI would, `put` writes a spec key with the GUI
    fields it comes from, `skip` lists a field with the reason it is not in the spec."""

    def __init__(
        self,
        config: dict[str, Any],
        folders: Folders,
        exists: Callable[[str], bool],
        dataset: str | None,
        model: str | None,
        components: dict[str, str] | None = None,
    ) -> None:
        self.raw, self.was, outranked = renamed(config)
        self.folders, self.exists, self.dataset, self.model = folders, exists, dataset, model
        self.components = components or {}  # --component NAME=PATH: the model's other files
        self.out = Imported({"version": 1})
        self.done: set[str] = set()  # read by the conversion
        self.mentioned: set[str] = set()  # named in the spec's comments or the unmapped list
        for name in outranked:
            self.out.unmapped.append((name, show(config[name]), "an older GUI's field; the config's newer one is used"))

    def has(self, name: str) -> bool:
        return name in self.raw

    def get(self, name: str) -> Any:
        """The value the GUI would use: the config's, coerced as update_my_data does, else the GUI default."""
        spec = BY_NAME[name]
        self.done.add(name)
        if name not in self.raw:
            return spec.default
        return coerce(spec, self.raw[name])

    def put(self, path: str, value: Any, *gui: str, note: str = "") -> None:
        keys = path.split(".")
        node = self.out.data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        self.note(tuple(keys), *gui, note=note)

    def note(self, keys: PathKey, *gui: str, note: str = "") -> None:
        said = []
        for name in gui:
            self.mentioned.add(name)
            absent = name not in self.raw and BY_NAME[name].default not in (None, False, "", 0)
            said.append(
                f"{self.label(name)} (absent: the GUI's {show(BY_NAME[name].default)})" if absent else self.label(name)
            )
        text = ", ".join(said) + (": " if said and note else "") + note
        if text:
            self.out.notes.setdefault(keys, []).append(text)

    def label(self, name: str) -> str:
        """The field's name, and the name an older GUI saved it under."""
        return f"{name} (saved as {self.was[name]})" if name in self.was else name

    def skip(self, name: str, reason: str) -> None:
        """A field of the config that reaches no spec field, with why (said at the top of the spec)."""
        self.done.add(name)
        if name in self.raw and name not in self.mentioned:
            self.out.unmapped.append((self.label(name), show(self.raw[name]), reason))
            self.mentioned.add(name)

    def warn(self, text: str) -> None:
        self.out.warnings.append(text)

    def unused(self, names: tuple[str, ...], lora_type: str) -> None:
        for name in names:
            self.done.add(name)
            self.skip(name, f"not passed by the GUI for LoRA_type {lora_type}")

    def secret(self, name: str, value: Any) -> None:
        self.mentioned.add(name)
        if value not in (None, ""):
            self.out.secrets.append(name)
        else:
            self.out.unmapped.append((name, "''", SECRET))

    def path_exists(self, where: str, path: str, folder: bool = False, hint: str = "") -> None:
        if folder and where in ("output.dir", "output.logging_dir"):
            return  # sd-scripts makes these
        if placeholder(path):
            self.warn(f"{where}: '{path}' is the preset's placeholder, not a path: {hint or 'write the path here'}")
        elif not self.exists(path):
            self.warn(f"{where}: '{path}' does not exist here{windows(path)}; kept as written")


def placeholder(path: str) -> bool:
    return bool(_PLACEHOLDER.match(path))


def windows(path: str) -> str:
    return " (a Windows path)" if _WINDOWS.search(path) else ""
