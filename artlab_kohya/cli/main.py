"""The root command: registers the commands (one module each, named like the command) and turns an
ArtlabError into its lines on stderr and its exit status. Only click is imported at start, so
`artlab-kohya --help` stays instant; each command imports what it needs when it runs."""

from __future__ import annotations

import click

from ..errors import ArtlabError
from .cancel import cancel
from .caption import caption
from .check import check
from .dataset import dataset
from .doctor import doctor
from .explain import explain
from .export_gui import export_gui
from .fetch import fetch
from .import_gui import import_gui
from .init import init
from .lora import lora
from .pick import pick
from .plan import plan
from .render import render
from .report import report
from .rerun import rerun
from .run import run
from .runs import runs
from .schema import schema
from .show import show
from .submit import submit
from .sweep import sweep
from .tune import tune


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ArtlabError as exc:
            for line in exc.lines():
                click.echo(line, err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="artlab-kohya")
def main() -> None:
    """Train Stable Diffusion LoRAs with kohya's sd-scripts from one reviewed YAML spec."""


COMMANDS = (init, check, plan, render, run, rerun, sweep, tune, submit, cancel, runs, show, pick, report)
for command in (*COMMANDS, fetch, doctor, dataset, caption, lora, import_gui, export_gui, schema, explain):
    main.add_command(command)
