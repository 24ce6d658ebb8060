"""What every command shows: the console (stderr), progress bars, the output report (stdout)."""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, soft_wrap=True, highlight=False)
_state = {"verbose": False}


def set_verbose(value: bool) -> None:
    _state["verbose"] = value


def verbose() -> bool:
    return _state["verbose"]


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator:
    """A rich progress bar; yields ``advance(label)`` for the library's progress callbacks."""
    columns = [
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[item]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(
        *columns, console=console, transient=False, disable=not console.is_terminal and not verbose()
    ) as progress:
        task = progress.add_task(description, total=total, item="")

        def advance(label: str = "", n: int = 1) -> None:
            progress.update(task, advance=n, item=label)

        yield advance


def report(message: str) -> None:
    """Where the outputs went (stdout, so pipelines can read it)."""
    import typer

    typer.echo(message)
