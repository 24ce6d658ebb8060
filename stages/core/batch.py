"""The batch engine of every per-item stage: items -> a task -> rows of status tables.

One loop for ``depth``, ``triangulate``, ``align-scale``, ``evaluate`` and ``generate --batch``:

- **skip** what an earlier run finished (status ``ok`` and the item's outputs on disk) unless
  ``overwrite``;
- **run** each item through :meth:`BatchTask.run`; a :class:`RealcamError` (or an ``OSError``)
  becomes the item's failed rows with the reason, and the batch goes on;
- **stream**: each item's rows are appended to a journal (``<status table>.journal``, one JSON
  line per item, flushed at once and synced to disk every second) as the item completes, and
  merged into the Parquet tables (atomically) whenever that costs under 2 % of the run, and at
  the end; a killed run is resumed from the tables and the journal, so nothing finished is lost
  or done twice;
- **where**: in this process (``workers=1``), in worker processes (``workers > 1``, or any per-item
  time limit), or on a Ray cluster (``ray``: ``local`` starts one on this machine, ``auto`` joins
  the running cluster, or an address). Model stages (``BatchTask.uses_model``) run as workers that
  load the model once (Ray actors asking for ``gpus_per_worker`` GPUs); the others as tasks asking
  for ``cpus_per_task`` CPUs;
- **failures**: an item whose worker dies (killed, out of memory, a crash in native code) is
  retried ``retries`` times on a fresh worker, then recorded as failed; an item running longer
  than ``timeout`` seconds is stopped (its worker killed) and recorded as failed.

The tables are sorted by the key (rows of one item keep their order), so the same items give the
same tables whichever executor ran them and in whatever order they finished.
"""

from __future__ import annotations

import abc
import json
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from . import checks
from .artifacts import FAILED, OK, merge_rows, read_table, write_table
from .errors import RealcamError

#: Merging the journal into the tables may take at most this share of the run's time.
COMPACTION_SHARE = 0.02
#: The journal is flushed after every item (a killed process loses nothing) and synced to disk
#: at most this often (against a crash of the machine itself).
SYNC_SECONDS = 1.0


class BatchTask(abc.ABC):
    """What a batch stage does per item (subclasses must pickle: they travel to worker processes
    and Ray workers; anything heavy is built in :meth:`setup`).

    ``tables``: table name -> its columns, the first one the status table (one row per item with
    ``key``, ``status`` and ``reason``)."""

    tables: dict[str, list[str]] = {}
    dtypes: dict[str, dict[str, str]] = {}  # table -> column -> dtype, where inference is not enough
    key: str = "item"
    uses_model: bool = False  # load once per worker (a GPU per Ray worker); else plain tasks
    finished: frozenset = frozenset({OK})  # statuses that count as done (every row of the item's)

    @abc.abstractmethod
    def key_of(self, item) -> str:
        """The item's key (its rows' ``key`` column)."""

    def outputs(self, item) -> list[Path]:
        """Files an item must have on disk to count as done."""
        return []

    def setup(self) -> None:
        """Once per worker, before its first item (a model stage loads its model here)."""
        return None  # an optional hook: nothing to set up by default

    @abc.abstractmethod
    def run(self, item) -> dict[str, list[dict]]:
        """The item's rows per table; raise :class:`RealcamError` for a failed item."""

    def failed(self, item, reason: str) -> dict[str, list[dict]]:
        """The rows of a failed item (by default one status row)."""
        first = next(iter(self.tables))
        return {first: [{self.key: self.key_of(item), "status": FAILED, "reason": reason}]}

    def after_death(self, item) -> None:
        """Clean what a worker killed while running ``item`` may have left (scratch files)."""
        return None  # an optional hook: nothing to clean by default


@dataclass
class Outcome:
    key: str
    rows: dict[str, list[dict]]
    seconds: float = 0.0


def run_item(task: BatchTask, item) -> Outcome:
    """One item, failures turned into rows (in whatever process runs it)."""
    t0 = time.perf_counter()
    try:
        rows = task.run(item)
    except RealcamError as err:
        rows = task.failed(item, str(err))
    except OSError as err:  # a write or read the item could not do: disk full, permissions
        where = f"{err.filename}: " if err.filename else ""
        rows = task.failed(item, where + checks.os_error_message(err))
    return Outcome(task.key_of(item), rows, time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------
# The tables and their journal
# ----------------------------------------------------------------------------------------------
class Tables:
    """The Parquet tables of a batch and the journal of rows not yet merged into them."""

    def __init__(self, task: BatchTask, paths: dict[str, Path]):
        self.task, self.paths = task, paths
        self.status_path = paths[next(iter(task.tables))]
        self.journal_path = self.status_path.with_name(self.status_path.name + ".journal")
        self.frames = {name: self._read(name) for name in task.tables}
        self.pending: list[Outcome] = []
        self._journal = None
        self._last_merge = self._last_sync = time.monotonic()
        self._merge_cost = 0.0
        replay = self._read_journal()
        if replay:
            self._merge(replay)
            self._write()
        self.journal_path.unlink(missing_ok=True)

    def _read(self, name: str):
        path = self.paths[name]
        if not path.exists():
            return pd.DataFrame(columns=self.task.tables[name])
        status = name == next(iter(self.task.tables))
        return read_table(path, [self.task.key, "status"] if status else [self.task.key])  # a foreign table: named

    def _read_journal(self) -> list[Outcome]:
        """The rows a killed run journalled but did not merge (a torn last line is dropped)."""
        if not self.journal_path.exists():
            return []
        out = []
        for line in self.journal_path.read_text().splitlines():
            try:
                record = json.loads(line)
                out.append(Outcome(record["key"], record["rows"], record.get("seconds", 0.0)))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        return out

    def done(self) -> set[str]:
        """Keys whose status rows are all finished (an item may have several rows)."""
        status = self.frames[next(iter(self.task.tables))]
        if status.empty:
            return set()
        finished = status["status"].isin(self.task.finished).groupby(status[self.task.key].astype(str)).all()
        return set(finished.index[finished.to_numpy()])

    def record(self, outcome: Outcome) -> None:
        """Journal one item's rows now; merge into the tables when it is cheap enough."""
        if self._journal is None:
            self._journal = open(self.journal_path, "a", encoding="utf-8")
        self._journal.write(
            json.dumps({"key": outcome.key, "rows": outcome.rows, "seconds": outcome.seconds}, default=_json_default)
            + "\n"
        )
        self._journal.flush()
        if time.monotonic() - self._last_sync >= SYNC_SECONDS:
            os.fsync(self._journal.fileno())
            self._last_sync = time.monotonic()
        self.pending.append(outcome)
        if time.monotonic() - self._last_merge >= self._merge_cost / COMPACTION_SHARE:
            self.flush()

    def flush(self) -> None:
        """Merge the journalled rows into the tables, write them atomically, empty the journal."""
        t0 = time.monotonic()
        if self.pending:
            self._merge(self.pending)
            self.pending = []
        self._write()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self.journal_path.unlink(missing_ok=True)
        self._last_merge = time.monotonic()
        self._merge_cost = self._last_merge - t0

    def _merge(self, outcomes: list[Outcome]) -> None:
        key = self.task.key
        keys = {o.key for o in outcomes}
        for name, columns in self.task.tables.items():
            old = self.frames[name]
            new = pd.DataFrame([r for o in outcomes for r in o.rows.get(name, [])], columns=columns)
            new = _like(new.astype(self.task.dtypes.get(name, {})), old)
            merged = _canonical(merge_rows(old, new, key, replace=keys))
            self.frames[name] = merged.sort_values(key, kind="stable", ignore_index=True)

    def _write(self) -> None:
        for name, frame in self.frames.items():
            with checks.writing(self.paths[name]):
                write_table(self.paths[name], frame)


#: pandas' own dtype for a column of strings (object before pandas 3, ``str`` from 3 on)
_STRINGS = pd.Series(["x"]).dtype


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns holding only strings (and missing values) in pandas' own string dtype: a table's
    types must not depend on whether its rows came from a Parquet file, a journal or this run
    (an object column concatenated with a ``str`` one stays object)."""
    for col in frame.columns:
        if frame[col].dtype == object:
            values = frame[col].dropna()
            if len(values) and all(isinstance(v, str) for v in values):
                frame[col] = frame[col].astype(_STRINGS)
    return frame


def _like(new, old):
    """``new`` with the dtypes of ``old`` where both have the column (a table keeps its types
    whether its rows came from this run or from a journal)."""
    if old.empty or new.empty:
        return new
    for col in new.columns:
        if col in old.columns and new[col].dtype != old[col].dtype:
            try:
                new[col] = new[col].astype(old[col].dtype)
            except (TypeError, ValueError):
                pass
    return new


def _json_default(value):
    """NumPy scalars and paths in rows."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


# ----------------------------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------------------------
@dataclass
class BatchResult:
    tables: dict[str, Any]  # name -> DataFrame
    skipped: int  # items done by an earlier run
    ran: list[str] = field(default_factory=list)  # keys of the items this run did


def run_batch(
    task: BatchTask,
    items: Iterable,
    paths: dict[str, Path],
    settings,
    progress: Callable[[str], None] | None = None,
) -> BatchResult:
    """Every item through ``task``, into the tables at ``paths`` (table name -> Parquet file);
    ``settings``: a :class:`~stages.settings.BatchSettings` (workers, Ray, time limit, retries,
    overwrite). Items whose key repeats run once."""
    settings = settings.check()
    tables = Tables(task, paths)
    done = tables.done()
    todo, skipped, seen = [], 0, set()
    for item in items:
        key = task.key_of(item)
        if key in seen:
            continue
        seen.add(key)
        if not settings.overwrite and key in done and all(Path(p).exists() for p in task.outputs(item)):
            skipped += 1
            if progress:
                progress(f"{key} (done)")
        else:
            todo.append(item)
    ran = []
    try:
        for outcome in execute(task, todo, settings):
            tables.record(outcome)
            ran.append(outcome.key)
            if progress:
                progress(outcome.key)
    finally:
        tables.flush()
    return BatchResult(tables.frames, skipped, ran)


def execute(task: BatchTask, items: list, settings) -> Iterator[Outcome]:
    """The outcomes of ``items`` in completion order, from the executor ``settings`` name."""
    if not items:
        return iter(())
    if settings.ray:
        return RayExecutor(task, settings).run(items)
    if settings.workers == 1 and settings.timeout is None:
        return _serial(task, items)
    return LocalExecutor(task, settings).run(items)


def _serial(task: BatchTask, items: list) -> Iterator[Outcome]:
    task.setup()
    for item in items:
        yield run_item(task, item)


# ----------------------------------------------------------------------------------------------
# Local worker processes
# ----------------------------------------------------------------------------------------------
def _worker_main(task: BatchTask, conn) -> None:
    """A worker process: set up once, then run the items it is sent until it is sent None."""
    try:
        task.setup()
        conn.send(("ready", None))
    except BaseException as err:  # reported to the main process, which raises it
        conn.send(("setup_failed", f"{type(err).__name__}: {err}"))
        return
    while True:
        item = conn.recv()
        if item is None:
            return
        try:
            conn.send(("done", run_item(task, item)))
        except BaseException as err:  # an unexpected error ends the batch, in the main process
            conn.send(("error", f"{type(err).__name__}: {err}"))
            return


class _Worker:
    def __init__(self, ctx, task: BatchTask):
        parent, child = ctx.Pipe()
        self.conn = parent
        self.process = ctx.Process(target=_worker_main, args=(task, child), daemon=True)
        self.process.start()
        child.close()
        self.item = None  # (item, started)
        self.ready = False

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


class LocalExecutor:
    """``workers`` processes (spawned), each setting the task up once; a dead or timed-out worker
    is replaced by a fresh one."""

    def __init__(self, task: BatchTask, settings):
        import multiprocessing

        self.task, self.settings = task, settings
        self.ctx = multiprocessing.get_context("spawn")

    def run(self, items: list) -> Iterator[Outcome]:
        from multiprocessing.connection import wait

        s = self.settings
        pending = deque(items)
        attempts: dict[str, int] = {}
        workers = [_Worker(self.ctx, self.task) for _ in range(min(s.workers, len(items)))]
        try:
            while pending or any(w.item for w in workers):
                for w in workers:
                    if w.ready and w.item is None and pending:
                        item = pending.popleft()
                        w.conn.send(item)
                        w.item = (item, time.monotonic())
                waits = [w.conn for w in workers] + [w.process.sentinel for w in workers]
                ready = set(wait(waits, timeout=self._wait_time(workers)))
                for i, w in enumerate(workers):
                    outcome, replace = self._check(w, ready, pending, attempts)
                    if outcome is not None:
                        yield outcome
                    if replace:
                        w.kill()
                        workers[i] = _Worker(self.ctx, self.task)
        finally:
            for w in workers:  # idle ones are told to stop (ready or still starting: the pipe keeps it)
                if w.process.is_alive() and w.item is None:
                    try:
                        w.conn.send(None)
                    except OSError:
                        pass
            for w in workers:
                if w.item is None:
                    w.process.join(timeout=30)
                w.kill()

    def _wait_time(self, workers) -> float:
        if self.settings.timeout is None:
            return 1.0
        left = [self.settings.timeout - (time.monotonic() - w.item[1]) for w in workers if w.item]
        return max(0.01, min(left, default=1.0))

    def _check(self, w: _Worker, ready: set, pending: deque, attempts: dict) -> tuple[Outcome | None, bool]:
        """What a worker has to say: (an outcome or None, whether to replace the worker)."""
        if w.conn in ready:
            try:
                kind, payload = w.conn.recv()
            except (EOFError, OSError):
                kind, payload = "died", None
            if kind == "ready":
                w.ready = True
                return None, False
            if kind == "done":
                w.item = None
                return payload, False
            if kind in ("setup_failed", "error"):
                raise RealcamError(f"a worker failed: {payload}")
        if not w.process.is_alive():
            return self._died(w, pending, attempts), True
        if w.item is not None and self.settings.timeout is not None:
            item, started = w.item
            if time.monotonic() - started > self.settings.timeout:
                w.item = None
                self.task.after_death(item)
                return _failed(
                    self.task, item, f"stopped after the time limit of {self.settings.timeout:g} s (--timeout)"
                ), True
        return None, False

    def _died(self, w: _Worker, pending: deque, attempts: dict) -> Outcome | None:
        if w.item is None:
            if not w.ready:
                raise RealcamError(f"a worker process could not start (exit code {w.process.exitcode})")
            return None
        item, _ = w.item
        w.item = None
        self.task.after_death(item)
        return _retry_or_fail(
            self.task,
            item,
            pending,
            attempts,
            self.settings.retries,
            f"the worker process died (exit code {w.process.exitcode}: killed, out of memory or crashed)",
        )


def _retry_or_fail(task, item, pending: deque, attempts: dict, retries: int, why: str) -> Outcome | None:
    key = task.key_of(item)
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] <= retries:
        pending.appendleft(item)
        return None
    tries = attempts[key]
    return _failed(task, item, f"{why}, {tries} time{'s' if tries > 1 else ''}; re-run to retry")


def _failed(task: BatchTask, item, reason: str) -> Outcome:
    return Outcome(task.key_of(item), task.failed(item, reason))


# ----------------------------------------------------------------------------------------------
# Ray
# ----------------------------------------------------------------------------------------------
def connect_ray(address: str, num_cpus: int | None = None):
    """Join (``auto``, an address) or start (``local``) a Ray cluster; returns the ``ray`` module."""
    try:
        import ray
    except ImportError:
        raise RealcamError("Ray is not installed (pip install 'realcam[ray]')", "--ray") from None
    if ray.is_initialized():
        return ray
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise RealcamError(f"cannot reach the Ray cluster at {address!r} ({err})", "--ray") from None
    return ray


def _ray_run_item(task: BatchTask, item) -> Outcome:
    """A Ray task: a stage without a model sets up per item (cheap), then runs it."""
    task.setup()
    return run_item(task, item)


class _RayModelWorker:
    """A Ray actor holding a set-up task (the model loaded once)."""

    def __init__(self, task: BatchTask):
        self.task = task
        task.setup()

    def run(self, item) -> Outcome:
        return run_item(self.task, item)


class RayExecutor:
    """Items as Ray tasks (``cpus_per_task`` CPUs each), or on ``workers`` actors for a model
    stage (``gpus_per_worker`` GPUs each; 1 when the cluster has GPUs and none was given)."""

    def __init__(self, task: BatchTask, settings):
        self.task, self.settings = task, settings

    def run(self, items: list) -> Iterator[Outcome]:
        s = self.settings
        ray = connect_ray(s.ray, num_cpus=max(s.workers, 1) if s.ray == "local" else None)
        if self.task.uses_model:
            yield from self._run_actors(ray, items)
        else:
            yield from self._run_tasks(ray, items)

    def _gpus(self, ray) -> float:
        if self.settings.gpus_per_worker is not None:
            return self.settings.gpus_per_worker
        return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0

    def _run_tasks(self, ray, items: list) -> Iterator[Outcome]:
        s = self.settings
        remote = ray.remote(_ray_run_item).options(num_cpus=s.cpus_per_task, max_retries=0)
        task = ray.put(self.task)  # sent to the object store once, not with every item
        pending, attempts, running = deque(items), {}, {}
        while pending or running:
            while pending and len(running) < max(s.workers, 1):
                item = pending.popleft()
                running[remote.remote(task, item)] = (item, time.monotonic())
            done, _ = ray.wait(list(running), num_returns=1, timeout=self._wait_time(running))
            for ref in done:
                item, _ = running.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    raise RealcamError(f"a Ray worker failed on {self.task.key_of(item)}: {err.cause!r}") from None
                except (
                    ray.exceptions.WorkerCrashedError,
                    ray.exceptions.NodeDiedError,
                    ray.exceptions.ObjectLostError,
                    ray.exceptions.RayError,
                ) as err:
                    out = _retry_or_fail(
                        self.task, item, pending, attempts, s.retries, f"the Ray worker died ({type(err).__name__})"
                    )
                    if out is not None:
                        yield out
            yield from self._stop_late(ray, running, lambda ref: ray.cancel(ref, force=True))

    def _run_actors(self, ray, items: list) -> Iterator[Outcome]:
        s = self.settings
        actor_class = ray.remote(_RayModelWorker).options(
            num_gpus=self._gpus(ray), num_cpus=s.cpus_per_task, max_restarts=0
        )
        # no more actors than the cluster can hold at once (others would wait for resources forever)
        gpus, resources = self._gpus(ray), ray.cluster_resources()
        room = resources.get("GPU", 0) // gpus if gpus else resources.get("CPU", 1) // s.cpus_per_task
        actors = [actor_class.remote(self.task) for _ in range(max(1, min(s.workers, len(items), int(room))))]
        idle, pending, attempts, running = deque(actors), deque(items), {}, {}
        try:
            while pending or running:
                while pending and idle:
                    actor, item = idle.popleft(), pending.popleft()
                    running[actor.run.remote(item)] = (item, time.monotonic(), actor)
                done, _ = ray.wait(list(running), num_returns=1, timeout=self._wait_time(running))
                for ref in done:
                    item, _, actor = running.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:
                        raise RealcamError(f"a Ray worker failed on {self.task.key_of(item)}: {err.cause!r}") from None
                    except ray.exceptions.RayError as err:  # the actor died: a fresh one takes its place
                        self.task.after_death(item)
                        idle.append(actor_class.remote(self.task))
                        outcome = _retry_or_fail(
                            self.task, item, pending, attempts, s.retries, f"the Ray worker died ({type(err).__name__})"
                        )
                    else:
                        idle.append(actor)
                    if outcome is not None:
                        yield outcome

                def stop(ref):
                    ray.kill(running[ref][2])
                    idle.append(actor_class.remote(self.task))

                yield from self._stop_late(ray, running, stop)
        finally:
            for actor in list(idle) + [r[2] for r in running.values()]:
                ray.kill(actor)

    def _wait_time(self, running: dict) -> float:
        if self.settings.timeout is None:
            return 1.0
        left = [self.settings.timeout - (time.monotonic() - r[1]) for r in running.values()]
        return max(0.01, min(left, default=1.0))

    def _stop_late(self, ray, running: dict, stop) -> Iterator[Outcome]:
        """Items past the time limit: stopped, recorded as failed."""
        limit = self.settings.timeout
        if limit is None:
            return
        now = time.monotonic()
        for ref in [r for r, v in running.items() if now - v[1] > limit]:
            stop(ref)
            item = running.pop(ref)[0]
            self.task.after_death(item)
            yield _failed(self.task, item, f"stopped after the time limit of {limit:g} s (--timeout)")


__all__ = [
    "BatchResult",
    "BatchTask",
    "MediaTask",
    "Outcome",
    "connect_ray",
    "execute",
    "read_media_table",
    "run_batch",
    "run_item",
    "run_media_batch",
]


def read_media_table(path: str | Path, source: str) -> list[dict]:
    """Rows of (``source``, trajectory[, prompt, seed, id, depth]) from CSV or Parquet (the batch
    forms of ``generate`` and ``rerender``): each row's ``source`` path under the key ``source``;
    relative paths are taken relative to the table's folder; a bad seed fails its row only."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise RealcamError("no such batch table", path)
    try:
        df = (
            read_table(path)
            if path.suffix.lower() == ".parquet"
            else pd.read_csv(path, dtype=str, keep_default_na=False)
        )
    except Exception as exc:
        raise RealcamError(f"cannot read the batch table ({type(exc).__name__})", path) from None
    missing = [c for c in (source, "trajectory") if c not in df.columns]
    if missing:
        raise RealcamError(
            f"batch table lacks column(s) {', '.join(missing)} (needs {source}, trajectory; optional prompt, seed, id)",
            path,
        )
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        line = i + 2  # CSV line: header first

        def local(p):
            p = str(p)
            return str(path.parent / p) if p and not Path(p).is_absolute() and (path.parent / p).exists() else p

        seed, problem = r.get("seed", ""), ""
        try:
            seed = None if seed in ("", None) or (isinstance(seed, float) and np.isnan(seed)) else int(seed)
            if seed is not None and seed < 0:
                raise ValueError
        except (TypeError, ValueError, OverflowError):  # this row fails; the others run
            problem, seed = f"{path}:{line}: seed must be a non-negative integer, got {r.get('seed')!r}", None
        item = str(r.get("id") or f"{i:05d}_{Path(str(r[source])).stem}")
        rows.append(
            {
                "item": item,
                "source": local(r[source]),
                "trajectory": local(r["trajectory"]),
                "prompt": str(r.get("prompt") or ""),
                "seed": seed,
                "problem": problem,
                "depth": local(r["depth"]) if r.get("depth") else None,
            }
        )
    if not rows:
        raise RealcamError("batch table has no rows", path)
    items = [r["item"] for r in rows]
    repeated = sorted({i for i in items if items.count(i) > 1})
    if repeated:
        raise RealcamError(
            f"batch table has repeated ids: {', '.join(repeated[:5])}{' ...' if len(repeated) > 5 else ''}", path
        )
    return rows


@dataclass
class MediaTask(BatchTask):
    """One video per table row (``generate --batch``, ``rerender --batch``): a row of
    :func:`read_media_table` in, ``out_dir/<item>.mp4`` and its record and a status row out; a row's
    prompt and seed override the settings'; the model loads once per worker (in ``setup``).
    Subclasses implement :meth:`make`."""

    out_dir: Path
    settings: Any
    device: str
    tables = {"status": ["item", "status", "reason", "video", "seed"]}
    key = "item"
    uses_model = True

    def key_of(self, row: dict) -> str:
        return row["item"]

    def video(self, row: dict) -> Path:
        return self.out_dir / f"{row['item']}.mp4"

    def outputs(self, row: dict) -> list[Path]:
        return [self.video(row), self.video(row).with_suffix(".json")]

    def settings_of(self, row: dict):
        from dataclasses import replace

        s = self.settings
        return replace(s, prompt=row["prompt"] or s.prompt, seed=s.seed if row["seed"] is None else row["seed"])

    @abc.abstractmethod
    def make(self, row: dict, settings, video: Path) -> None:
        """Write ``video`` (and its record) from ``row['source']`` with ``settings``."""

    def _status(self, row: dict, status: str, reason: str) -> dict[str, list[dict]]:
        seed = int(self.settings_of(row).seed)
        return {
            "status": [
                {"item": row["item"], "status": status, "reason": reason, "video": str(self.video(row)), "seed": seed}
            ]
        }

    def run(self, row: dict) -> dict[str, list[dict]]:
        if row["problem"]:
            raise RealcamError(row["problem"])
        self.make(row, self.settings_of(row), self.video(row))
        return self._status(row, OK, "")

    def failed(self, row: dict, reason: str) -> dict[str, list[dict]]:
        return self._status(row, FAILED, reason)


def run_media_batch(task: MediaTask, table: str | Path, source: str, table_name: str, batch, progress=None):
    """The rows of ``table`` (its ``source`` column the input media) through ``task``: the status
    table ``task.out_dir/<table_name>`` (a shard's own), with ``attrs["skipped"]`` the rows done in
    an earlier run. Run here (not on Ray), the task's device is resolved first, so that an
    unavailable one is named before any row."""
    from .dataset import shard, shard_table
    from .device import resolve_device

    if not batch.ray:
        task.device = resolve_device(task.device)

    rows = shard(read_media_table(table, source), batch.shard)
    task.out_dir = checks.output_dir(task.out_dir)
    task.out_dir.mkdir(parents=True, exist_ok=True)
    result = run_batch(task, rows, {"status": task.out_dir / shard_table(table_name, batch.shard)}, batch, progress)
    out = result.tables["status"]
    out.attrs["skipped"] = result.skipped  # rows already done in an earlier run
    return out
