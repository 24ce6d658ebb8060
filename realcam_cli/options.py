"""Options shared by every batch stage (the engine's settings, `stages.settings.BatchSettings`).

Declared once here; each batch command lists them in its signature and passes them to
:func:`batch_settings`.
"""

from __future__ import annotations

from typing import Optional

import typer

from stages.settings import BatchSettings

WORKERS = typer.Option(BatchSettings.workers, "--workers", help="Items in parallel: processes here, or Ray workers.")
RAY = typer.Option(
    None,
    "--ray",
    help="Run on Ray: local (start it on this machine), auto (join the running cluster) or an address "
    "(host:port, ray://...).",
)
GPUS_PER_WORKER = typer.Option(
    None, "--gpus-per-worker", help="GPUs per Ray worker of a model stage (default: 1 when the cluster has GPUs)."
)
CPUS_PER_TASK = typer.Option(BatchSettings.cpus_per_task, "--cpus-per-task", help="CPUs per Ray task or worker.")
TIMEOUT = typer.Option(
    None, "--timeout", help="Seconds an item may run; a longer one is stopped and recorded as failed."
)
RETRIES = typer.Option(
    BatchSettings.retries, "--retries", help="Re-runs of an item whose worker died before it is recorded as failed."
)
SHARD = typer.Option(None, "--shard", help="I/N: process only slice I (from 0) of N (e.g. a Slurm array task).")
OVERWRITE = typer.Option(False, "--overwrite", help="Redo items already done.")


def batch_settings(
    workers: int,
    ray: Optional[str],
    gpus_per_worker: Optional[float],
    cpus_per_task: float,
    timeout: Optional[float],
    retries: int,
    shard: Optional[str],
    overwrite: bool,
) -> BatchSettings:
    return BatchSettings(
        workers=workers,
        ray=ray,
        gpus_per_worker=gpus_per_worker,
        cpus_per_task=cpus_per_task,
        timeout=timeout,
        retries=retries,
        shard=shard,
        overwrite=overwrite,
    ).check()
