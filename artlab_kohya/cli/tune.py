"""`artlab-kohya tune SPEC`: timed short runs of speed settings on this card; the fastest stable one is
cached for `launch.profile: fast`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import load, print_issues, set_option


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option("--steps", default=40, show_default=True, type=click.IntRange(8, 10_000), help="Steps per candidate.")
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(10, 86_400),
    help="Seconds a candidate may take, start to end; one that takes longer (a hang) is stopped and skipped.",
)
@click.option(
    "--batch",
    is_flag=True,
    help="Also try the fastest candidate at 2x, 4x, ... the batch until it fails or stops paying, and show the "
    "effective batch and learning-rate consequence (never applied for you).",
)
@click.option(
    "--candidate",
    "extra",
    multiple=True,
    metavar="NAME:PATH=VALUE[,PATH=VALUE]",
    help="A candidate of your own (repeatable); with --only-mine the built-in ones are left out.",
)
@click.option("--only-mine", is_flag=True, help="Run only the --candidate ones.")
@click.option("--no-cache", is_flag=True, help="Measure and report, but do not cache the choice.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the tune folder goes.")
@click.option("--offline", is_flag=True, default=None, help="Use only the local hub cache (as HF_HUB_OFFLINE=1).")
def tune(
    spec_path: Path,
    overrides: tuple[str, ...],
    steps: int,
    timeout: float,
    batch: bool,
    extra: tuple[str, ...],
    only_mine: bool,
    no_cache: bool,
    runs_dir: Path | None,
    offline: bool | None,
) -> None:
    """Find this card's fastest stable speed settings for SPEC: each candidate (the default profile, cuDNN
    autotuning, more data-loader workers, torch.compile) trains --steps steps on SPEC's own model and data,
    bounded by --timeout. The fastest that finished, if it beats the default by 3%, is cached per (card,
    family, resolution, network, batch); `launch.profile: fast` then starts from it. Only settings that do
    not change what is learned are tried; see tune.json in the tune folder for every number.
    """
    from .. import settings
    from ..experiments.tune import CANDIDATES, TuneOptions, TuneStopped, check_candidates, parse_candidate
    from ..experiments.tune import tune as run_tune

    loaded = load(spec_path, overrides)
    print_issues(loaded.warnings)
    mine = tuple(parse_candidate(text) for text in extra)
    if only_mine and not mine:
        raise click.UsageError("--only-mine needs at least one --candidate")
    candidates = mine if only_mine else CANDIDATES + mine
    for warning in check_candidates(loaded, candidates, overrides, steps):
        click.echo(f"warning: {warning}", err=True)
    root = settings.runs_root(spec_path, runs_dir)
    options = TuneOptions(
        steps=steps,
        timeout=timeout,
        batch=batch,
        candidates=candidates,
        runs_root=root,
        offline=offline,
        overrides=overrides,
        cache=not no_cache,
        echo=lambda line: click.echo(line, err=True),
    )
    try:
        record = run_tune(loaded, options)
    except (KeyboardInterrupt, TuneStopped) as exc:
        click.echo(f"tune stopped ({exc or 'Ctrl-C'}): the running candidate was stopped; see tune.json", err=True)
        sys.exit(130 if isinstance(exc, KeyboardInterrupt) else 143)
    _print(record)
    if not record.get("chosen"):
        sys.exit(1)


def _print(record: dict) -> None:
    rows = record["candidates"] + record.get("batches", [])
    default = next((r for r in rows if r["name"] == "default" and r.get("images_per_s")), None)
    click.echo(f"{'candidate':<28} {'status':<10} {'images/s':>9} {'vs default':>10} {'first step':>10}  note")
    for r in rows:
        ips = r.get("images_per_s")
        ratio = f"{ips / default['images_per_s']:.2f}x" if ips and default else ""
        first = f"{r['first_step_s']:.1f} s" if r.get("first_step_s") is not None else ""
        note = (r.get("note") or "").splitlines()[0][:100] if r.get("note") else ""
        click.echo(f"{r['name']:<28} {r['status']:<10} {ips or '':>9} {ratio:>10} {first:>10}  {note}".rstrip())
    for r in record.get("batches", []):
        click.echo(f"{r['name']}: {r['consequence']}")
    if record.get("chosen"):
        where = f", cached in {record['cached_in']}" if record.get("cached_in") else " (not cached: --no-cache)"
        click.echo(f"chosen: {record['chosen']} for {record['key']}{where}")
    else:
        click.echo("chosen: none (no candidate finished); nothing cached")
    click.echo(f"tune folder: {record['folder']}")
