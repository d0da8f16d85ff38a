"""The files a FLUX.1 or SD3 run needs besides its transformer (autoencoder, CLIP-L, CLIP-G, T5-XXL),
each from the spec (a local path or a hub file, optionally with its SHA-256) or from the alias that
named the model, pinned the way the base model is (`hub.py`)."""

from __future__ import annotations

from pathlib import Path

from ..spec.families import ALIASES, Component, Family, components
from ..spec.model import HubSource, LocalSource, Spec
from .checkpoint import ModelError
from .hub import ResolvedModel, resolve_hub, resolve_local


def check_sha256(what: str, source: LocalSource | HubSource, resolved: ResolvedModel) -> None:
    """A spec that pins a file's SHA-256 gets that file or an error, never another."""
    if source.sha256 is not None and resolved.sha256 != source.sha256:
        raise ModelError(
            f"{what}: {resolved.path} has SHA-256 {resolved.sha256}, not the {source.sha256} the spec pins "
            "(another release, or a damaged download)"
        )


def check_pinned_source(spec: Spec, model: ResolvedModel) -> None:
    """The base model against the sha256 its spec pins, if it pins one."""
    source = spec.model.source
    if source.type != "alias":
        check_sha256("model.source", source, model)


def component_record(resolved: ResolvedModel) -> dict[str, object]:
    """How the run record (spec.lock.yaml) pins a component: path, hash, and for hub files repo and commit."""
    record: dict[str, object] = {"path": str(resolved.path), "sha256": resolved.sha256, "size": resolved.size}
    if resolved.repo is not None:
        record |= {"repo": resolved.repo, "file": resolved.filename, "commit": resolved.commit}
    return record


def _resolve(what: str, source: LocalSource | HubSource, offline: bool | None) -> ResolvedModel:
    if source.type == "local":
        if not source.path.exists():
            raise ModelError(f"{what}: {source.path} does not exist")
        resolved = resolve_local(source.path)
    else:
        resolved = resolve_hub(source.repo, source.file, source.revision, offline=offline)
    check_sha256(what, source, resolved)
    return resolved


def resolve_components(
    spec: Spec, family: Family, *, offline: bool | None = None, skip_missing: bool = False
) -> dict[Component, ResolvedModel]:
    """Every component `family` needs, resolved (downloaded into the hub cache unless offline).
    `skip_missing` leaves out the ones nothing names (render reports those at their spec field)."""
    out: dict[Component, ResolvedModel] = {}
    source = spec.model.source
    for name in components(family):
        given = getattr(spec.model, name)
        if given is not None:
            out[name] = _resolve(f"model.{name}", given, offline)
            continue
        alias = ALIASES[source.name] if source.type == "alias" else None
        if alias is None or name not in alias.components:
            if skip_missing:
                continue
            raise ModelError(f"model.{name}: {family} needs its {name} file; give a local path or a hub file")
        hub = alias.components[name]
        out[name] = resolve_hub(hub.repo, hub.filename, "main", offline=offline)
    return out


def component_paths(spec: Spec, family: Family, *, offline: bool | None = None) -> dict[str, Path]:
    """Paths of the components that are named; render reports the missing ones where they belong."""
    resolved = resolve_components(spec, family, offline=offline, skip_missing=True)
    return {name: r.path for name, r in resolved.items()}


def component_paths_for_render(spec: Spec, family: Family) -> dict[str, Path]:
    """What `render` writes without downloading or hashing: local paths as written (the files may be on the
    machine that will train), hub files from the hub cache."""
    paths: dict[str, Path] = {}
    source = spec.model.source
    for name in components(family):
        given = getattr(spec.model, name)
        if given is not None and given.type == "local":
            paths[name] = given.path
        elif given is not None:
            paths[name] = resolve_hub(given.repo, given.file, given.revision, offline=True).path
        elif source.type == "alias" and name in ALIASES[source.name].components:
            hub = ALIASES[source.name].components[name]
            paths[name] = resolve_hub(hub.repo, hub.filename, "main", offline=True).path
    return paths
