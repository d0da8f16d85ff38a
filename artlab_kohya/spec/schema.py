"""Walking the schema itself: which model validates a table, its variants, where a field lives.

Used for "did you mean" in errors (load.py) and for the field reference (reference.py).
"""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

from pydantic import BaseModel

from .model import Spec


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold, in declaration order (the members of a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found += [m for m in models_in(arg) if m not in found]
    return found


def tag_of(model: type[BaseModel]) -> str | None:
    """A variant's `type` value (lora, hub, ...), or None for a model that is no variant."""
    field = model.model_fields.get("type")
    values = get_args(field.annotation) if field is not None else ()
    return str(values[0]) if len(values) == 1 else None


def model_for(annotation: Any, node: Any) -> type[BaseModel] | None:
    """The model that validates `node` under `annotation`: the variant its `type` names, if a union."""
    found = models_in(annotation)
    if len(found) > 1 and isinstance(node, dict):
        for model in found:
            if tag_of(model) == node.get("type"):
                return model
    return found[0] if found else None


def model_at(path: tuple[str | int, ...], data: Any) -> type[BaseModel] | None:
    """The model that validates the table at `path` of the spec's data."""
    model: type[BaseModel] | None = Spec
    node = data
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        node = node.get(part) if isinstance(node, dict) else None
        if model is None or part not in model.model_fields:
            return None
        model = model_for(model.model_fields[part].annotation, node)
    return model


def union_siblings(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The other variants of the discriminated union `model` belongs to (empty if none)."""
    for union in _unions():
        if model in union:
            return [m for m in union if m is not model]
    return []


@cache
def _unions() -> list[tuple[type[BaseModel], ...]]:
    found: list[tuple[type[BaseModel], ...]] = []
    seen: set[type[BaseModel]] = set()
    stack: list[type[BaseModel]] = [Spec]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for info in current.model_fields.values():
            members = models_in(info.annotation)
            if len(members) > 1 and all(tag_of(m) for m in members):
                found.append(tuple(members))
            stack.extend(members)
    return found


@cache
def field_paths() -> dict[str, str]:
    """Leaf field name -> its full path, for names that occur once in the schema."""
    found: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            path = f"{prefix}.{name}" if prefix else name
            found.setdefault(name, []).append(path)
            nested = models_in(info.annotation)
            if nested:
                walk(nested[0], f"{path}[0]" if name == "subsets" else path)

    walk(Spec, "")
    return {name: paths[0] for name, paths in found.items() if len(paths) == 1}
