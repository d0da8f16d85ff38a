"""YAML reading that remembers where every value came from.

PyYAML follows YAML 1.1, where `no` is false and `1e-4` is a string. A spec says
`mixed_precision: no` and `learning_rate: 1e-4`, so this loader resolves scalars the YAML 1.2
way: only true/false are booleans, and `1e-4` is a float.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


class SpecYamlError(Exception):
    """The text is not YAML we accept; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    pass


_IMPLICIT = {
    "tag:yaml.org,2002:bool": re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    "tag:yaml.org,2002:int": re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    "tag:yaml.org,2002:float": re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _IMPLICIT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _rx in _IMPLICIT.items():
    _Loader.add_implicit_resolver(_tag, _rx, list("-+0123456789.tTfFo"))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_with_lines(text: str) -> tuple[Any, dict[PathKey, int]]:
    """Parse `text` into plain data and a map from each value's path to its 1-based line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[PathKey, int] = {}
        data = None if node is None else _build(loader, node, (), lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SpecYamlError(line, f"not valid YAML: {exc.problem or exc}") from None
    finally:
        loader.dispose()
    return data, lines


def parse_scalar(text: str) -> Any:
    """A `--set` value, read with the same rules as the file (`[512, 768]`, `1e-4`, `no`)."""
    data, _ = load_with_lines(text)
    return data


def _build(loader: _Loader, node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise SpecYamlError(line, f"keys must be text, got {key!r}")
            if key in out:
                raise SpecYamlError(line, f"key '{key}' appears twice in the same table")
            child = path + (key,)
            out[key] = _build(loader, value_node, child, lines)
            lines[child] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def format_path(path: PathKey) -> str:
    """('dataset', 'subsets', 0, 'repeats') -> 'dataset.subsets[0].repeats'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


_NAME = re.compile(r"^[A-Za-z_][\w\-]*$")


def parse_path(text: str) -> PathKey:
    """'dataset.subsets[0].repeats' or 'dataset.subsets.0.repeats' -> a path tuple."""
    parts: list[str | int] = []
    for part in re.sub(r"\[(\d+)\]", r".\1", text).split("."):
        if part.isdigit() and parts:
            parts.append(int(part))
        elif _NAME.match(part):
            parts.append(part)
        else:
            raise ValueError(f"cannot read the path '{text}' (write it like dataset.subsets[0].repeats)")
    return tuple(parts)
