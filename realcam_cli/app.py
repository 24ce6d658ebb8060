"""The Typer app: global flags, the one error path, and the registration of every stage command.

The command modules import only Typer and ``stages.settings`` at load time; each stage's library
(torch, pandas, pycolmap, ...) is imported inside its command, so ``realcam --help`` and
``realcam <stage> --help`` start at once.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer
from typer.core import TyperGroup

from stages import __version__
from stages.core.errors import RealcamError

from . import annotate, edit, evaluate, fetch, generate, poses, preview, rerender, synth, train
from .ui import console, set_verbose, verbose


class RealcamGroup(TyperGroup):
    """Turns a library error into one red line and exit status 2 (a traceback only with --verbose)."""

    def invoke(self, ctx):
        from rich.markup import escape

        try:
            return super().invoke(ctx)
        except RealcamError as err:
            if verbose():
                console.print_exception()
            console.print(f"[bold red]error:[/] {escape(str(err))}")
            raise typer.Exit(2) from None
        except OSError as err:  # a write the stage did not expect to fail: disk full, read-only
            from stages.core.checks import os_error_message

            if verbose():
                console.print_exception()
            where = f"{err.filename}: " if err.filename else ""
            console.print(f"[bold red]error:[/] {escape(where + os_error_message(err))}")
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=RealcamGroup,
    name="realcam",
    help="Camera-controlled image-to-video generation (RealCam-I2V): metric-scale annotation, "
    "training, preview, generation and evaluation as staged commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"realcam {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and more detail."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    set_verbose(verbose)


# The stage commands, in pipeline order (`realcam --help` lists them so).
COMMANDS = [
    ("fetch", fetch.fetch),
    ("synth", synth.synth),
    ("depth", annotate.depth),
    ("triangulate", annotate.triangulate),
    ("align-scale", annotate.align_scale),
    ("filter", annotate.filter_),
    ("annotate", annotate.annotate),
    ("poses", poses.poses),
    ("train", train.train),
    ("preview", preview.preview),
    ("edit", edit.edit),
    ("generate", generate.generate),
    ("rerender", rerender.rerender),
    ("evaluate", evaluate.evaluate),
]
for _name, _command in COMMANDS:
    app.command(_name)(_command)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
