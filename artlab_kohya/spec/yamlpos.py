"""YAML reading that remembers where every value came from.

PyYAML follows YAML 1.1, where `no` is false and `1e-4` is a string. A spec says
`mixed_precision: no` and `learning_rate: 1e-4`, so this loader resolves scalars the YAML 1.2
way: only true/false are booleans, and `1e-4` is a float.

It also refuses, each with its line, what no spec needs and what hostile text relies on: bytes that
are not UTF-8, control characters, deep nesting, aliases that expand without end (or into themselves)
and numbers beyond 64 bits, so that reading any file takes bounded time and memory.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


class SpecYamlError(Exception):
    """The text is not YAML we accept; `line` is 1-based."""

    def __init__(self, line: int, message: str, path: PathKey = ()) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.path = path


# A spec is a few kilobytes and a few hundred values; these bounds keep hostile text (an alias bomb, a
# file of brackets) to milliseconds and megabytes, and a lock (the spec plus the run's record) well within.
MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_ALIASES = 1_000
MAX_NODES = 100_000
MAX_DIGITS = 20  # 2**63 has 19 digits; nothing in a spec is larger

# What YAML allows in a stream (tab, line breaks and printable text), from the YAML 1.2 spec.
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Control characters that escapes in double quotes can still produce; tab and newline are text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_UTF16_32 = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def decode(raw: bytes) -> str:
    """UTF-8 text (a UTF-8 byte order mark is dropped), or SpecYamlError at the first bad byte."""
    if len(raw) > MAX_BYTES:
        raise SpecYamlError(0, f"the file is larger than {MAX_BYTES >> 20} MiB; a spec is a few kilobytes")
    for bom, name in _UTF16_32.items():
        if raw.startswith(bom):
            raise SpecYamlError(1, f"the file is {name}; save the file as UTF-8")
    if raw.count(b"\x00") * 4 > len(raw):  # ASCII text as UTF-16 or UTF-32 without a byte order mark
        raise SpecYamlError(1, "the file looks like UTF-16 or UTF-32 (full of zero bytes); save the file as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecYamlError(
            line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column}); save the file as UTF-8"
        ) from None


def check_characters(text: str) -> None:
    """SpecYamlError at the first character YAML does not allow (controls, lone surrogates, NUL)."""
    bad = _NOT_PRINTABLE.search(text)
    if bad is None:
        return
    line = text.count("\n", 0, bad.start()) + 1
    column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
    code = ord(bad.group())
    if 0xD800 <= code <= 0xDFFF:  # how Python hands over bytes that are not UTF-8 (command-line arguments)
        raise SpecYamlError(line, "not UTF-8 text; give the value as UTF-8")
    raise SpecYamlError(line, f"control character U+{code:04X} at column {column}; remove it")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars and bounds on nesting and aliases while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else 1
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise SpecYamlError(line, f"more than {MAX_ALIASES} aliases (*name)")
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SpecYamlError(line, f"nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


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
    digits = len(text.lstrip("+-").removeprefix("0x").removeprefix("0o"))
    value = None
    if digits <= MAX_DIGITS:  # before int(), which refuses (or takes long over) thousands of digits
        base = {"0o": 8, "0x": 16}.get(text[:2], 10)
        value = int(text[2:] if base != 10 else text, base)
    if value is None or not -(2**63) <= value < 2**63:
        raise SpecYamlError(
            node.start_mark.line + 1, f"a whole number of {digits} digits; numbers in a spec fit in 64 bits"
        )
    return value


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_with_lines(text: str) -> tuple[Any, dict[PathKey, int]]:
    """Parse `text` into plain data and a map from each value's path to its 1-based line."""
    check_characters(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[PathKey, int] = {}
        data = None if node is None else _Builder(loader, lines).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SpecYamlError(line, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecYamlError(1, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, lines


def parse_scalar(text: str) -> Any:
    """A `--set` value, read with the same rules as the file (`[512, 768]`, `1e-4`, `no`)."""
    data, _ = load_with_lines(text)
    return data


_MERGE = "tag:yaml.org,2002:merge"


class _Builder:
    """Plain data from the node graph, counting what aliases expand to.

    PyYAML shares one node among all uses of an alias, so a few lines can stand for a billion values,
    or for a list that contains itself; building counts every use and stops at MAX_NODES.
    """

    def __init__(self, loader: _Loader, lines: dict[PathKey, int]) -> None:
        self.loader = loader
        self.lines = lines
        self.nodes = 0
        self.open: set[int] = set()  # the lists and tables being built, to catch one that contains itself
        self.key_line = 0  # the line of the key whose value is being built: where an expansion is used

    def build(self, node: yaml.Node, path: PathKey, line: int = 0) -> Any:
        """`line`: where the caller met the node (an alias's own line is not kept), else the node's."""
        line = line or node.start_mark.line + 1
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SpecYamlError(
                self.key_line or line, f"aliases expand to more than {MAX_NODES} values; a spec is far smaller"
            )
        if len(path) > MAX_DEPTH:
            raise SpecYamlError(line, f"nested more than {MAX_DEPTH} levels deep (through aliases)")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.open:
            raise SpecYamlError(line, "an alias refers to the list or table that contains it")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):  # each item's line, for errors inside a list
                    self.lines.setdefault((*path, i), item.start_mark.line + 1)
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            return self._mapping(node, path)
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:  # `<<: *defaults` brings the keys this table does not set itself
                tables = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for table in tables:
                    if not isinstance(table, yaml.MappingNode):
                        raise SpecYamlError(line, "<< merges a table or a list of tables")
                    for key, value in self.build(table, path).items():
                        merged.setdefault(key, value)
                continue
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                shown = repr(key) if isinstance(key_node, yaml.ScalarNode) else f"a {key_node.id}"
                raise SpecYamlError(line, f"keys must be text, got {shown}")
            if key in out:
                raise SpecYamlError(line, f"key '{key}' appears twice in the same table")
            child = path + (key,)
            outer, self.key_line = self.key_line, line
            out[key] = self.build(value_node, child, line)
            self.key_line = outer
            self.lines[child] = line
        self.lines[path] = node.start_mark.line + 1
        return {**{k: v for k, v in merged.items() if k not in out}, **out}

    def _scalar(self, node: yaml.ScalarNode, path: PathKey) -> Any:
        line = node.start_mark.line + 1
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except SpecYamlError as exc:
            raise SpecYamlError(exc.line, exc.message, exc.path or path) from None
        except Exception as exc:  # noqa: BLE001 - PyYAML's constructors raise ValueError & co. on bad tagged text
            kind = node.tag.rsplit(":", 1)[-1]
            raise SpecYamlError(line, f"cannot read {node.value[:40]!r} as {kind} ({exc})", path) from None
        if isinstance(value, str) and (bad := _CONTROL.search(value)):
            raise SpecYamlError(line, f"control character U+{ord(bad.group()):04X} in text; remove it", path)
        return value


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
    names = re.sub(r"\[(\d+)\]", r".\1", text).split(".")
    if len(names) > MAX_DEPTH:
        raise ValueError(f"the path '{text[:60]}...' is more than {MAX_DEPTH} levels deep")
    for part in names:
        if part.isdigit() and parts:
            parts.append(int(part))
        elif _NAME.match(part):
            parts.append(part)
        else:
            raise ValueError(f"cannot read the path '{text}' (write it like dataset.subsets[0].repeats)")
    return tuple(parts)
