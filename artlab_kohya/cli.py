"""The command line: parse arguments, call the library, print. Heavy imports stay inside commands
so that `artlab-kohya --help` is instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .cli_dataset import caption, dataset
from .cli_doctor import doctor

if TYPE_CHECKING:
    from .spec import LoadedSpec

SPEC_ERROR = 2

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a spec value, e.g. --set dataset.batch_size=4 (repeatable; YAML values).",
)


def _fail(lines: list[str], code: int = SPEC_ERROR) -> NoReturn:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(code)


def _load(spec_path: Path, overrides: tuple[str, ...]) -> LoadedSpec:
    from .spec import SpecError, load_spec

    try:
        loaded = load_spec(spec_path, overrides)
    except SpecError as exc:
        _fail([str(i) for i in exc.issues] + [f"{len(exc.issues)} error(s) in {spec_path}"])
    for override in loaded.overrides:
        click.echo(f"override: {override}", err=True)
    return loaded


def _print_issues(issues: list[Any]) -> None:
    for issue in issues:
        click.echo(str(issue), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="artlab-kohya")
def main() -> None:
    """Train Stable Diffusion LoRAs with kohya's sd-scripts from one reviewed YAML spec."""


main.add_command(doctor)
main.add_command(dataset)
main.add_command(caption)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--preset",
    type=click.Choice(["anime", "person", "object", "style"]),
    required=True,
    help="Starting numbers from the guide's beginner table.",
)
@click.option("--vram", type=float, default=None, help="GPU memory in GB; picks the batch size.")
@click.option("--name", default=None, help="Trigger word and output name (default: the folder's name).")
def init(folder: Path, preset: str, vram: float | None, name: str | None) -> None:
    """Write FOLDER/spec.yaml and a kohya-style dataset folder (img/N_name)."""
    from .presets import init_project

    try:
        spec_path, images = init_project(folder, preset, vram, name)
    except FileExistsError as exc:
        _fail([str(exc)], 1)
    except ValueError as exc:
        _fail([f"error: {exc}"])
    click.echo(f"wrote {spec_path}")
    click.echo(f"put your images and .txt captions in {images}/")
    click.echo(f"then: artlab-kohya check {spec_path}")


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--deep", is_flag=True, help="Also decode every image in full (slower).")
def check(spec_path: Path, overrides: tuple[str, ...], as_json: bool, deep: bool) -> None:
    """Report every problem of SPEC and its dataset at once, each with its line."""
    from .cli_dataset import check_spec

    loaded = _load(spec_path, overrides)
    sys.exit(check_spec(loaded, spec_path, as_json=as_json, deep=deep))


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(spec_path: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show the step math and the files training will save."""
    from .plan import PlanError, plan_checked, plan_json, print_plan

    loaded = _load(spec_path, overrides)
    try:
        result = plan_checked(loaded)
    except PlanError as exc:
        _fail([str(i) for i in exc.issues] + [f"{len(exc.issues)} error(s) in {spec_path}"])
    if as_json:
        click.echo(json.dumps(plan_json(result), indent=2))
        return
    _print_issues(loaded.warnings + result.warnings)
    print_plan(result)


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
    help="Folder for dataset.toml, config.toml (and prompts.txt).",
)  # fmt: skip
@set_option
def render(spec_path: Path, out_dir: Path, overrides: tuple[str, ...]) -> None:
    """Write kohya's dataset.toml and config.toml for SPEC and print the launch command."""
    from .plan import PlanError
    from .prepare import render_for

    loaded = _load(spec_path, overrides)
    try:
        rendered, argv = render_for(loaded, out_dir.resolve())
    except PlanError as exc:
        _fail([str(i) for i in exc.issues] + [f"{len(exc.issues)} error(s) in {spec_path}"])
    _print_issues(loaded.warnings)
    for path in rendered.write(out_dir.resolve()):
        click.echo(f"wrote {path}", err=True)
    import shlex

    click.echo(shlex.join(argv))


@main.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editor completion)."""
    from .reference import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@main.command()
@click.argument("field", required=False)
@click.option("--markdown", is_flag=True, help="The whole reference as a Markdown table (as in the README).")
def explain(field: str | None, markdown: bool) -> None:
    """Describe spec fields: all of them, or those under FIELD (e.g. network, training.epochs)."""
    from .reference import field_docs, reference_markdown

    if markdown:
        click.echo(reference_markdown(), nl=False)
        return
    docs = [d for d in field_docs() if field is None or d.path == field or d.path.startswith(f"{field}.")]
    docs += [d for d in field_docs() if field and d.path.startswith(f"{field}[]") and d not in docs]
    if not docs:
        _fail([f"no spec field '{field}'; `artlab-kohya explain` lists them all"])
    for doc in docs:
        default = f" (default: {doc.default})" if doc.default else ""
        click.echo(f"{doc.path}: {doc.type}{default}\n    {doc.description}")


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), help="Where run folders go.")
@click.option("--plain", is_flag=True, help="Plain progress lines, no live view (the default when not a terminal).")
@click.option("--offline", is_flag=True, default=None, help="Use only the local hub cache (as HF_HUB_OFFLINE=1).")
@click.option("--ignore-dataset-errors", is_flag=True, help="Launch even if the dataset check finds errors.")
def run(
    spec_path: Path,
    overrides: tuple[str, ...],
    runs_dir: Path | None,
    plain: bool,
    offline: bool | None,
    ignore_dataset_errors: bool,
) -> None:
    """Train: check, resolve the model, write the run folder, launch sd-scripts, show progress."""
    from .cli_dataset import preflight
    from .runner import RunOptions

    loaded = _load(spec_path, overrides)
    _print_issues(loaded.warnings)
    if not preflight(loaded, force=ignore_dataset_errors):
        sys.exit(SPEC_ERROR)
    _run(loaded, RunOptions(runs_root=runs_dir, plain=plain or None, offline=offline))


def _run(loaded: LoadedSpec, options: Any) -> NoReturn:
    from .plan import PlanError
    from .runner import SetupError, run_spec

    try:
        outcome = run_spec(loaded, options)
    except PlanError as exc:
        _fail([str(i) for i in exc.issues] + [f"{len(exc.issues)} error(s) in {loaded.path}"])
    except SetupError as exc:
        _fail([f"error: {exc}"], 1)
    sys.exit(outcome.exit_code)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the new run folder goes.")
@click.option("--plain", is_flag=True, help="Plain progress lines, no live view.")
def rerun(run_dir: Path, runs_dir: Path | None, plain: bool) -> None:
    """Run a finished run's lock again, in a new run folder (same model file, same settings)."""
    from .rerun import RerunError, load_lock
    from .spec import SpecError

    try:
        loaded, options = load_lock(run_dir, runs_root=runs_dir, plain=plain or None)
    except SpecError as exc:
        _fail([str(i) for i in exc.issues] + [f"{len(exc.issues)} error(s) in {run_dir}"])
    except RerunError as exc:
        _fail([f"error: {exc}"], 1)
    _run(loaded, options)


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
def fetch(spec_path: Path, overrides: tuple[str, ...]) -> None:
    """Download (or find in the cache) the base model and tokenizer, and print what they pin to."""
    from .hub import ModelError, prepare_tokenizer_cache, tokenizer_root
    from .runner import SetupError, concrete_family, resolve_model

    loaded = _load(spec_path, overrides)
    try:
        model = resolve_model(loaded.spec, None)
        family = concrete_family(loaded.spec, model)
        tokenizer = prepare_tokenizer_cache(family, tokenizer_root())
    except (SetupError, ModelError) as exc:
        _fail([f"error: {exc}"], 1)
    pin = f" @ {model.commit}" if model.commit else ""
    where = f"{model.repo}/{model.filename}" if model.repo else str(model.path)
    click.echo(f"model: {where}{pin}")
    click.echo(f"  file: {model.path}\n  sha256: {model.sha256}\n  size: {model.size:,} bytes\n  family: {family}")
    click.echo(f"tokenizer: {tokenizer}")
