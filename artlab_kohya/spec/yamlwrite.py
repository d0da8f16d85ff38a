"""Writing a spec as YAML a person reads: block style, a comment beside each key, strings quoted only where
YAML 1.2 would read them as something else. What it writes reads back to the same data (yamlpos)."""

from __future__ import annotations

import json
import re
from typing import Any

PathKey = tuple[str | int, ...]
_PLAIN = re.compile(r"[A-Za-z_][\w.\-/]*")
_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def dump(data: dict[str, Any], notes: dict[PathKey, list[str]] | None = None, header: list[str] | None = None) -> str:
    """`data` as block YAML; notes[path] are written as a comment after that key (or list item)."""
    lines = [f"# {line}".rstrip() for line in header or []]
    _mapping(data, (), 0, notes or {}, lines)
    return "\n".join(lines) + "\n"


def _comment(notes: dict[PathKey, list[str]], path: PathKey) -> str:
    said = notes.get(path)
    return f"  # {'; '.join(said)}" if said else ""


def _mapping(
    data: dict[str, Any], path: PathKey, indent: int, notes: dict[PathKey, list[str]], lines: list[str]
) -> None:
    pad = " " * indent
    for key, value in data.items():
        here = (*path, key)
        name = scalar(key)
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{name}:{_comment(notes, here)}")
            _mapping(value, here, indent + 2, notes, lines)
        elif isinstance(value, list) and value and any(isinstance(v, dict) for v in value):
            lines.append(f"{pad}{name}:{_comment(notes, here)}")
            for i, item in enumerate(value):
                _item(item, (*here, i), indent + 2, notes, lines)
        else:
            lines.append(f"{pad}{name}: {_inline(value)}{_comment(notes, here)}")


def _item(item: Any, path: PathKey, indent: int, notes: dict[PathKey, list[str]], lines: list[str]) -> None:
    pad = " " * indent
    if not isinstance(item, dict) or not item:
        lines.append(f"{pad}- {_inline(item)}{_comment(notes, path)}")
        return
    block: list[str] = []
    _mapping(item, path, indent + 2, notes, block)
    lines.append(f"{pad}- {block[0].lstrip()}")
    lines.extend(block[1:])


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return scalar(value)
