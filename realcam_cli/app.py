"""The Typer app: global flags, the one error path, progress bars; stage commands register here."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from typer.core import TyperGroup

from stages import __version__
from stages.core.errors import RealcamError

console = Console(stderr=True, soft_wrap=True, highlight=False)
_state = {"verbose": False}


class RealcamGroup(TyperGroup):
    """Turns a library error into one red line and exit status 2 (a traceback only with --verbose)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RealcamError as err:
            if _state["verbose"]:
                console.print_exception()
            console.print(f"[bold red]error:[/] {escape(str(err))}")
            raise typer.Exit(2) from None
        except OSError as err:  # a write the stage did not expect to fail: disk full, read-only
            from stages.core.checks import os_error_message

            if _state["verbose"]:
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
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    _state["verbose"] = verbose


def verbose() -> bool:
    return _state["verbose"]


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator:
    """A rich progress bar; yields ``advance(label)`` for the library's progress callbacks."""
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TextColumn("{task.fields[item]}"), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False,
                  disable=not console.is_terminal and not verbose()) as progress:
        task = progress.add_task(description, total=total, item="")

        def advance(label: str = "", n: int = 1) -> None:
            progress.update(task, advance=n, item=label)

        yield advance


def report(message: str) -> None:
    """Where the outputs went (stdout, so pipelines can read it)."""
    typer.echo(message)


def fail(message: str, source: str | None = None) -> None:
    raise RealcamError(message, source)


# Stage commands register themselves on ``app`` when imported.
from . import annotate, edit, evaluate, generate, preview, synth, train  # noqa: E402,F401


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
