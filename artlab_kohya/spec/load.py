"""Reading a spec: YAML with lines, `--set` overrides, validation, every problem at once.

Problems come out as `spec.yaml:14: network.dim: must be at least 1 (got 0)`; a value that came
from `--set` is located at that override instead of a line.
"""

from __future__ import annotations

import copy
import difflib
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ..errors import SPEC_ERROR, ArtlabError
from .model import MAX_SEED, Spec
from .schema import field_paths, model_at, tag_of, union_siblings
from .yamlpos import (
    MAX_BYTES,
    PathKey,
    SpecYamlError,
    decode,
    format_path,
    load_with_lines,
    parse_path,
    parse_scalar,
)

# Keys people carry over from sd-scripts or the GUI that have no place in a spec.
KNOWN_KEY_HINTS = {
    "stop_text_encoder_training": "train_network.py has no such option at the pinned sd-scripts commit; "
    "set network.train: unet to leave the text encoder alone",
}


@dataclass(frozen=True)
class Issue:
    severity: Literal["error", "warning"]
    path: PathKey
    message: str
    where: str = ""

    def __str__(self) -> str:
        label = "" if self.severity == "error" else "warning: "
        at = f"{format_path(self.path)}: " if self.path else ""
        return f"{self.where}: {label}{at}{self.message}"


class SpecError(ArtlabError):
    """The spec cannot be used; `issues` holds every located error, `source` the spec file."""

    exit_code = SPEC_ERROR

    def __init__(self, issues: list[Issue], source: Path | str | None = None) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues
        self.source = source

    def lines(self) -> list[str]:
        where = f" in {self.source}" if self.source else ""
        return [str(i) for i in self.issues] + [f"{len(self.issues)} error(s){where}"]


@dataclass(frozen=True)
class Override:
    path: PathKey
    value: Any
    previous: Any
    text: str
    was_set: bool = True  # False: the spec file did not set it (the schema's default applied)

    def __str__(self) -> str:
        was = f"was {self.previous!r}" if self.was_set else "not set in the file: its default before"
        return f"{format_path(self.path)} = {self.value!r} ({was})"


_MISSING = object()


@dataclass
class LoadedSpec:
    """A validated spec plus what is needed to point at its lines."""

    spec: Spec
    path: Path
    text: str
    data: dict[str, Any]
    overrides: list[Override] = field(default_factory=list)
    lines: dict[PathKey, int] = field(default_factory=dict)
    warnings: list[Issue] = field(default_factory=list)
    # `matrix:` (a sweep) as written, taken out before validation: experiments/matrix.py expands it.
    matrix: Any = None
    matrix_lines: dict[PathKey, int] = field(default_factory=dict)  # its entries' lines, paths below `matrix`
    seed_drawn: bool = False  # training.seed was `random`: spec.training.seed holds the number drawn

    def locate(self, path: PathKey) -> str:
        return _locate(self.path, self.lines, self.overrides, path)

    def issue(self, severity: Literal["error", "warning"], path: PathKey, message: str) -> Issue:
        return Issue(severity, path, message, self.locate(path))

    def file_issues(self) -> list[Issue]:
        """Files the spec names that are not on this disk (the base model first): what `check`, `plan`
        and `run` report before anything is launched."""
        from .rules import check_files

        return [self.issue(sev, loc, msg) for sev, loc, msg in check_files(self.spec, self.path.resolve().parent)]


def _locate(spec_path: Path, lines: dict[PathKey, int], overrides: list[Override], path: PathKey) -> str:
    for override in overrides:
        if path[: len(override.path)] == override.path:
            return f"--set {override.text}"
    if path not in lines:  # a table that only an override made (`--set trainning.epochs=3`)
        for override in overrides:
            if override.path[: len(path)] == path:
                return f"--set {override.text}"
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return f"{spec_path.name}:{lines[path[:end]]}"
    return f"{spec_path.name}:1"


def read_text(path: Path, what: str = "spec") -> str:
    """The text of a spec (or lock) file: UTF-8 and at most MAX_BYTES, else SpecError at the first bad byte."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
        return decode(raw)
    except OSError as exc:
        raise SpecError([Issue("error", (), f"cannot read the {what}: {exc.strerror or exc}", str(path))]) from None
    except SpecYamlError as exc:
        raise SpecError([Issue("error", (), exc.message, _where(path, exc))]) from None


def _where(path: Path, exc: SpecYamlError) -> str:
    return f"{path.name}:{exc.line}" if exc.line else path.name


def load_spec(path: Path | str, overrides: list[str] | tuple[str, ...] = ()) -> LoadedSpec:
    """Read, override and validate; raise SpecError with every problem found."""
    path = Path(path)
    return load_spec_text(read_text(path), path, overrides)


def parse_text(text: str, path: Path) -> tuple[Any, dict[PathKey, int]]:
    """YAML text -> (data, lines), or SpecError located in `path`."""
    try:
        return load_with_lines(text)
    except SpecYamlError as exc:
        raise SpecError([Issue("error", exc.path, exc.message, _where(path, exc))], path) from None


def load_spec_text(text: str, path: Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedSpec:
    """As load_spec, for text that came from elsewhere; `path` names it and anchors relative paths."""
    data, lines = parse_text(text, path)
    return load_spec_data(data, lines, text, path, overrides)


def load_spec_data(
    data: Any,
    lines: dict[PathKey, int],
    text: str,
    path: Path,
    overrides: list[str] | tuple[str, ...] = (),
) -> LoadedSpec:
    """Validate parsed data whose values sit at `lines` of `path` (a spec file, or a lock that holds one)."""
    from .rules import check_rules

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            [Issue("error", (), "a spec is a YAML mapping (model:, dataset:, network: ...)", path.name)], path
        )
    matrix, matrix_lines = pop_matrix(data, lines)
    data, applied, problems = apply_overrides(data, overrides)
    context = {"base_dir": path.resolve().parent}
    try:
        spec = Spec.model_validate(data, context=context)
    except ValidationError as exc:
        issues = [
            Issue("error", loc, msg, _locate(path, lines, applied, loc)) for loc, msg in describe_errors(exc, data)
        ]
        raise SpecError(_dedupe(problems + issues), path) from None
    if problems:
        raise SpecError(problems, path)
    drawn = spec.training.seed == "random"
    if drawn:  # drawn here, so that the render, the run's lock and its locked spec (a rerun) hold one number
        seed = secrets.randbelow(MAX_SEED + 1)
        spec = spec.model_copy(update={"training": spec.training.model_copy(update={"seed": seed})})
    loaded = LoadedSpec(spec=spec, path=path, text=text, data=data, overrides=applied, lines=lines)
    loaded.matrix, loaded.matrix_lines = matrix, matrix_lines
    loaded.seed_drawn = drawn
    found = check_rules(spec)
    errors = [loaded.issue(sev, loc, msg) for sev, loc, msg in found if sev == "error"]
    if errors:
        raise SpecError(errors, path)
    loaded.warnings = [loaded.issue(sev, loc, msg) for sev, loc, msg in found if sev == "warning"]
    return loaded


MATRIX = "matrix"  # a sweep's key beside the spec's own (experiments/matrix.py), and its group of lists
MATRIX_ZIP = "zip"


def pop_matrix(data: dict[str, Any], lines: dict[PathKey, int]) -> tuple[Any, dict[PathKey, int]]:
    """Take `matrix:` out of `data`: it describes several runs, not one, so the rest validates as the base spec."""
    if MATRIX not in data:
        return None, {}
    matrix = data.pop(MATRIX)
    return matrix, {path[1:]: line for path, line in lines.items() if path[:1] == (MATRIX,)}


def apply_overrides(
    data: dict[str, Any], overrides: list[str] | tuple[str, ...]
) -> tuple[dict[str, Any], list[Override], list[Issue]]:
    """`--set a.b[0].c=value`: values are YAML, validated later like the file's own."""
    data = copy.deepcopy(data)
    applied: list[Override] = []
    problems: list[Issue] = []
    for given in overrides:
        text = printable(given)
        key, sep, raw = given.partition("=")
        where = f"--set {text}"
        try:
            if not sep:
                raise ValueError("write it as yaml.path=value, e.g. network.dim=32")
            path = parse_path(key.strip())
            value = parse_scalar(raw) if raw.strip() else None
            previous = _assign(data, path, value)
        except (ValueError, SpecYamlError) as exc:
            problems.append(Issue("error", (), printable(str(exc)), where))
            continue
        missing = previous is _MISSING
        applied.append(Override(path, value, None if missing else previous, text, was_set=not missing))
    return data, applied, problems


def printable(text: str) -> str:
    """`text` safe to print: bytes that were not UTF-8 and control characters as backslash escapes."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    shown = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode() for c in shown)


def _assign(data: Any, path: PathKey, value: Any) -> Any:
    node = data
    for i, part in enumerate(path[:-1]):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ValueError(f"{format_path(path[: i + 1])} does not exist in the spec")
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ValueError(f"{format_path(path[:i])} is not a table")
        node = node.setdefault(part, {})
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ValueError(f"{format_path(path)} does not exist in the spec")
        previous, node[last] = node[last], value
        return previous
    if not isinstance(node, dict):
        raise ValueError(f"{format_path(path[:-1])} is not a table")
    previous = node.get(last, _MISSING)
    node[last] = value
    return previous


# --------------------------------------------------------------------------- error wording

_KIND = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a table (key: value lines)",
    "model_type": "a table (key: value lines)",
    "model_attributes_type": "a table (key: value lines)",
    "path_type": "a path",
}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return repr(value)


def _data_path(loc: tuple[Any, ...], data: Any) -> PathKey:
    """Drop pydantic's union-member labels from `loc`, keeping only keys that exist in the data."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            out.append(part)
        elif last and (isinstance(node, dict) and isinstance(part, str) and not _is_label(part)):
            out.append(part)
    return tuple(out)


def _is_label(part: str) -> bool:
    """pydantic names union members in `loc` ('constrained-int', 'tuple[int, int]', 'lora'...)."""
    return any(c in part for c in "[-(") or part in ("int", "float", "str", "bool", "list", "dict", "tuple")


def _unknown_key(path: PathKey, data: Any) -> str:
    key = str(path[-1])
    if key in KNOWN_KEY_HINTS:
        return f"unknown key '{key}': {KNOWN_KEY_HINTS[key]}"
    model = model_at(path[:-1], data)
    names = list(model.model_fields) if model else []
    owners = [str(tag_of(v)) for v in union_siblings(model) if key in v.model_fields] if model else []
    if model is not None and owners:
        return f"unknown key '{key}' for type {tag_of(model)}; only type {', '.join(owners)} has it"
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    elsewhere = field_paths().get(key) or field_paths().get(_SD_SCRIPTS_NAMES.get(key, ""))
    if elsewhere:
        return f"unknown key '{key}' here; it belongs at {elsewhere}"
    hint = f" (known here: {', '.join(names)})" if names else ""
    return f"unknown key '{key}'{hint}"


# sd-scripts' names for fields the spec calls otherwise, so a pasted kohya key finds its home.
_SD_SCRIPTS_NAMES = {
    "network_dim": "dim",
    "network_alpha": "alpha",
    "train_batch_size": "batch_size",
    "max_train_epochs": "epochs",
    "max_train_steps": "max_steps",
    "num_repeats": "repeats",
    "image_dir": "path",
    "pretrained_model_name_or_path": "source",
    "optimizer_type": "optimizer",
    "lr_scheduler": "scheduler",
    "lr_warmup_steps": "warmup_steps",
    "output_name": "name",
    "save_model_as": "format",
    "enable_bucket": "buckets",
}


def _message(error: Any, path: PathKey, data: Any) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_key(path, data)
    if kind in _KIND:
        return f"must be {_KIND[kind]} (got {_show(value)})"
    if kind in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
        words = {
            "greater_than_equal": ("at least", "ge"),
            "greater_than": ("greater than", "gt"),
            "less_than": ("less than", "lt"),
            "less_than_equal": ("at most", "le"),
        }[kind]
        return f"must be {words[0]} {ctx[words[1]]} (got {_show(value)})"
    if kind == "literal_error":
        names = [c.strip(" '") for c in str(ctx.get("expected", "")).replace(" or ", ", ").split(",")]
        choices = ", ".join(f"'{n}'" for n in names)
        near = _nearest(str(value), names)
        hint = f"; did you mean '{near}'?" if near and near != str(value) else ""
        return f"must be one of {choices} (got {_show(value)}){hint}"
    if kind == "union_tag_invalid":
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        near = _nearest(str(ctx.get("tag")), tags)
        hint = f"; did you mean '{near}'?" if near else ""
        return f"must be one of {', '.join(tags)} (got {_show(ctx.get('tag'))}){hint}"
    if kind == "union_tag_not_found":
        return "needs a `type:` to say which kind this is"
    if kind in ("too_short", "too_long"):
        if isinstance(value, str):
            return "must not be empty"
        bound = ("at least", ctx.get("min_length")) if kind == "too_short" else ("at most", ctx.get("max_length"))
        return f"must have {bound[0]} {bound[1]} item(s) (got {_show(value)})"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')} (got {_show(value)})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg']} (got {_show(value)})"


def _nearest(value: str, choices: list[str]) -> str | None:
    """The closest choice, preferring one that starts with the same word: cosine_with_warmup is nearer
    cosine_with_restarts than constant_with_warmup, with which it only shares the ending."""
    close = difflib.get_close_matches(value, choices, n=len(choices), cutoff=0.5)
    head = value.split("_", 1)[0]
    same_head = [c for c in close if c.split("_", 1)[0] == head]
    found = same_head or close
    return found[0] if found else None


def describe_errors(exc: ValidationError, data: Any) -> list[tuple[PathKey, str]]:
    """One message per location; alternatives of a union are joined with "or"."""
    by_path: dict[PathKey, list[str]] = {}
    for error in exc.errors(include_url=False):
        path = _data_path(tuple(error["loc"]), data)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = (*path, "type")
        message = _message(error, path, data)
        bucket = by_path.setdefault(path, [])
        if message not in bucket:
            bucket.append(message)
    return [(path, _join_alternatives(_narrow(messages))) for path, messages in by_path.items()]


def _narrow(messages: list[str]) -> list[str]:
    """An infinite or NaN number is the problem, whatever else the field could have been (text, true...)."""
    finite = [m for m in messages if m.startswith(f"must be {_KIND['finite_number']} ")]
    return finite or messages


def _join_alternatives(messages: list[str]) -> str:
    """'must be at least 1 (got 0)' + "must be one of 'folder', 'auto' (got 0)" -> one sentence."""
    if len(messages) == 1:
        return messages[0]
    got = re.compile(r" \(got [^()]*\)$")
    tails = {m.group(0) for m in (got.search(x) for x in messages) if m}
    if len(tails) != 1 or not all(x.startswith("must be ") for x in messages):
        return " or ".join(messages)
    parts = [got.sub("", x).removeprefix("must be ") for x in messages]
    return "must be " + " or ".join(dict.fromkeys(parts)) + tails.pop()


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen: set[str] = set()
    out = []
    for issue in issues:
        if str(issue) not in seen:
            seen.add(str(issue))
            out.append(issue)
    return out
