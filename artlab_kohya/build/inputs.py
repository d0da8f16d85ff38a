"""From a loaded spec to what a launch needs: the model file, its family, repeats, TOML, argv.

`render` and `run` share this path, so what `render` shows is what `run` starts.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import settings
from ..dataset.steps import subset_repeats
from ..machine import this_machine
from ..spec import LoadedSpec
from ..spec.families import Family, components, script_for
from ..trainer.install import Install
from ..trainer.surface import Surface, bundled_surface
from .command import build_command
from .plan import PlanError, make_plan, plan_family, spec_family
from .render import Rendered, RenderError, RenderInputs, render
from .speed import Card, Speed, choose_speed, read_tuned


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    family: Family
    components: dict[str, Path] | None = None  # FLUX.1/SD3 files; None: resolved by render_inputs


def _components(loaded: LoadedSpec, family: Family, offline: bool | None) -> dict[str, Path]:
    """The FLUX.1/SD3 files, located errors when one cannot be had (offline and not downloaded, say)."""
    if not components(family):
        return {}
    from ..models.checkpoint import ModelError
    from ..models.components import component_paths, component_paths_for_render
    from ..models.hub import NotDownloaded

    try:
        if offline:  # render: nothing downloaded or hashed
            return component_paths_for_render(loaded.spec, family)
        return component_paths(loaded.spec, family, offline=offline)
    except NotDownloaded as exc:
        raise PlanError([loaded.issue("error", ("model",), _not_downloaded(loaded, exc.what))], loaded.path) from None
    except ModelError as exc:
        raise PlanError([loaded.issue("error", ("model",), str(exc))], loaded.path) from None


def model_for_render(loaded: LoadedSpec) -> ModelChoice:
    """The model path and family without downloading: local files as they are, hub files from the cache."""
    spec = loaded.spec
    source = spec.model.source
    at = ("model", "source")
    if source.type == "local":
        path = source.path
        family = plan_family(spec)
    else:
        from ..models.checkpoint import ModelError
        from ..models.hub import NotDownloaded, resolve_alias, resolve_hub

        try:  # from the hub cache only: render never downloads
            resolved = (
                resolve_alias(source.name, offline=True)
                if source.type == "alias"
                else resolve_hub(source.repo, source.file, source.revision, offline=True)
            )
        except NotDownloaded as exc:
            raise PlanError([loaded.issue("error", at, _not_downloaded(loaded, exc.what))], loaded.path) from None
        except ModelError as exc:
            raise PlanError([loaded.issue("error", at, str(exc))], loaded.path) from None
        path = resolved.path
        family = spec_family(spec, resolved.family, resolved.prediction)
    if family is None:
        raise PlanError(
            [
                loaded.issue(
                    "error",
                    ("model", "family"),
                    f"cannot tell the family of {path}; set sd15, sd2, sd2-v, sdxl, sdxl-v, flux1 or sd3",
                )
            ],
            loaded.path,
        )
    return ModelChoice(path=path, family=family, components=_components(loaded, family, offline=True))


def _not_downloaded(loaded: LoadedSpec, what: str) -> str:
    blocked = "; HF_HUB_OFFLINE is set, so fetch where the network is allowed" if settings.hf_offline() else ""
    return (
        f"{what} is not downloaded yet (render only looks in the hub cache, {settings.hf_hub_cache()}): "
        f"`artlab-kohya fetch {shlex.quote(str(loaded.path))}` downloads it{blocked}"
    )


def resolved_repeats(loaded: LoadedSpec) -> tuple[tuple[int, ...], tuple[str | None, ...]]:
    """Repeats and class tokens per subset; only `repeats: auto` needs to look at the images."""
    repeats, _, tokens, issues = subset_repeats(loaded)
    if issues:
        raise PlanError(issues, loaded.path)
    if None in repeats:
        plan = make_plan(loaded)
        return tuple(s.repeats for s in plan.subsets), tuple(s.class_tokens for s in plan.subsets)
    return tuple(r for r in repeats if r is not None), tuple(tokens)


def render_inputs(
    loaded: LoadedSpec,
    model: ModelChoice,
    config_dir: Path,
    default_output: Path,
    tokenizer_cache_dir: Path | None = None,
    default_logging: Path | None = None,
    offline: bool | None = None,
    speed: Speed | None = None,
) -> RenderInputs:
    spec = loaded.spec
    parts = model.components if model.components is not None else _components(loaded, model.family, offline)
    repeats, tokens = resolved_repeats(loaded)
    output_dir = spec.output.dir or default_output
    return RenderInputs(
        model_path=model.path,
        family=model.family,
        repeats=repeats,
        class_tokens=tokens,
        config_dir=config_dir,
        output_dir=output_dir,
        logging_dir=spec.output.logging_dir or default_logging or output_dir / "logs",
        tokenizer_cache_dir=tokenizer_cache_dir,
        spec_name=loaded.path.name,
        components=parts,
        speed=speed,
    )


def render_checked(loaded: LoadedSpec, inputs: RenderInputs, surface: Surface) -> Rendered:
    try:
        return render(loaded.spec, inputs, surface)
    except RenderError as exc:
        raise PlanError([loaded.issue("error", path, message) for path, message in exc.problems], loaded.path) from None


def speed_here(loaded: LoadedSpec, family: Family, versions: dict[str, Any] | None) -> Speed:
    """The speed choices on this machine, for the trainer whose version probe is `versions`."""
    return choose_speed(loaded.spec, family, this_machine(), Card.from_versions(versions), read_tuned())


def speed_for_plan(loaded: LoadedSpec, family: Family | None) -> Speed:
    """plan's view of the speed choices: this machine, the trainer's card from its cached probe (if any)."""
    from ..errors import ArtlabError
    from ..trainer.install import cached_versions, find_install

    try:
        versions = cached_versions(find_install(loaded.spec))
    except (ArtlabError, OSError):
        versions = None
    return speed_here(loaded, family or "sd15", versions)


def render_for(loaded: LoadedSpec, out_dir: Path, install: Install | None = None) -> tuple[Rendered, list[str]]:
    """What `artlab-kohya render` writes and prints: the speed choices of this machine, with the trainer's
    card as its last version probe saw it (render itself never starts the trainer's Python)."""
    from ..errors import ArtlabError
    from ..trainer.install import cached_versions, find_install

    model = model_for_render(loaded)
    install = install or find_install(loaded.spec)
    try:
        versions = cached_versions(install)
    except (ArtlabError, OSError):
        versions = None
    speed = speed_here(loaded, model.family, versions)
    inputs = render_inputs(loaded, model, out_dir, out_dir, speed=speed)
    rendered = render_checked(loaded, inputs, bundled_surface(script_for(model.family)))
    argv, _ = build_command(loaded.spec, install, out_dir / "config.toml", model.family, speed=speed)
    return rendered, argv
