"""The batch engine: the same tables from every executor (in-process, worker processes, Ray),
dead workers retried without loss or duplicates, time limits, skip and overwrite, and a journal
that a killed run resumes from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from stages.core.batch import BatchTask, Tables, run_batch
from stages.core.errors import RealcamError
from stages.settings import BatchSettings

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SquareTask(BatchTask):
    """Item ``n`` -> an output file and rows in two tables; ``die``: items whose worker process
    kills itself the first time (a marker file remembers); ``slow``: items that sleep this long;
    ``bad``: items that fail."""

    out: Path
    die: tuple = ()
    slow: tuple = ()
    bad: tuple = ()
    sleep: float = 0.0
    tables = {"status": ["item", "status", "reason", "square", "pid"], "parts": ["item", "part", "value"]}
    key = "item"

    def key_of(self, n: int) -> str:
        return f"{n:03d}"

    def outputs(self, n: int) -> list[Path]:
        return [self.out / f"{self.key_of(n)}.json"]

    def run(self, n: int) -> dict:
        marker = self.out / f"died-{n}"
        if n in self.die and not marker.exists():
            marker.write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        if n in self.slow:
            time.sleep(60)
        if n in self.bad:
            raise RealcamError(f"item {n} is bad")
        time.sleep(self.sleep)
        (self.out / f"{self.key_of(n)}.json").write_text(json.dumps(n * n))
        key = self.key_of(n)
        return {
            "status": [{"item": key, "status": "ok", "reason": "", "square": n * n, "pid": os.getpid()}],
            "parts": [{"item": key, "part": p, "value": n + p} for p in range(n % 3)],
        }


def run_square(tmp: Path, items, **settings) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    task = SquareTask(tmp, **{k: settings.pop(k) for k in ("die", "slow", "bad", "sleep") if k in settings})
    paths = {"status": tmp / "status.parquet", "parts": tmp / "parts.parquet"}
    return run_batch(task, items, paths, BatchSettings(**settings))


def comparable(result) -> dict:
    return {name: t.drop(columns=[c for c in ("pid",) if c in t.columns]) for name, t in result.tables.items()}


def assert_same_tables(a, b) -> None:
    for name in a:
        pd.testing.assert_frame_equal(a[name].reset_index(drop=True), b[name].reset_index(drop=True))


ITEMS = list(range(12))


def test_serial_and_worker_processes_give_the_same_tables_failures_included(tmp_path):
    serial = run_square(tmp_path / "serial", ITEMS, bad=(4,))
    pool = run_square(tmp_path / "pool", list(reversed(ITEMS)), workers=3, bad=(4,))
    assert_same_tables(comparable(serial), comparable(pool))
    status = serial.tables["status"]
    assert list(status["item"]) == [f"{n:03d}" for n in ITEMS]  # sorted by key, whatever the order
    assert status.set_index("item").loc["004", "reason"] == "item 4 is bad"
    assert (status.set_index("item").drop("004")["square"] == [n * n for n in ITEMS if n != 4]).all()
    assert len(serial.tables["parts"]) == sum(n % 3 for n in ITEMS if n != 4)
    assert len(set(pool.tables["status"]["pid"])) > 1  # the items really ran in several processes


def test_skip_done_items_and_overwrite(tmp_path):
    first = run_square(tmp_path, ITEMS[:6], bad=(2,))
    assert first.skipped == 0 and len(first.ran) == 6
    again = run_square(tmp_path, ITEMS)  # item 2 failed before: redone; 0, 1, 3, 4, 5 done
    assert again.skipped == 5 and sorted(again.ran) == ["002"] + [f"{n:03d}" for n in ITEMS[6:]]
    (tmp_path / "003.json").unlink()  # an output gone: the item is redone
    third = run_square(tmp_path, ITEMS)
    assert third.ran == ["003"] and third.skipped == 11
    assert run_square(tmp_path, ITEMS, overwrite=True).skipped == 0
    assert (again.tables["status"]["status"] == "ok").all() and len(again.tables["status"]) == 12


def test_a_dead_worker_is_retried_then_failed_and_nothing_is_lost(tmp_path):
    clean = run_square(tmp_path / "clean", ITEMS)
    retried = run_square(tmp_path / "retried", ITEMS, workers=2, die=(3, 7))
    assert_same_tables(comparable(clean), comparable(retried))  # killed mid-run: retried, same tables
    failed = run_square(tmp_path / "failed", ITEMS, workers=2, die=(5,), retries=0)
    row = failed.tables["status"].set_index("item").loc["005"]
    assert row["status"] == "failed" and "worker process died" in row["reason"] and "-9" in row["reason"]
    assert (failed.tables["status"].set_index("item").drop("005")["status"] == "ok").all()


def test_time_limit_stops_an_item_and_the_rest_go_on(tmp_path):
    t0 = time.monotonic()
    result = run_square(tmp_path, ITEMS[:4], workers=2, slow=(1,), timeout=3)
    assert time.monotonic() - t0 < 40
    status = result.tables["status"].set_index("item")
    assert status.loc["001", "status"] == "failed" and "time limit of 3 s" in status.loc["001", "reason"]
    assert (status.drop("001")["status"] == "ok").all()


def test_a_killed_run_resumes_from_its_journal(tmp_path):
    """Rows journalled but not merged (the run killed in between) are in the tables after the next
    start, and their items are not run again; a torn last line is ignored."""
    task = SquareTask(tmp_path)
    paths = {"status": tmp_path / "status.parquet", "parts": tmp_path / "parts.parquet"}
    journal = Tables(task, paths).journal_path
    with open(journal, "w") as f:  # what a run killed before its first merge leaves
        for n in (0, 1):
            f.write(json.dumps({"key": task.key_of(n), "rows": task.run(n)}) + "\n")
        f.write('{"key": "002", "rows": {"sta')  # torn by the kill
    assert not paths["status"].exists()
    resumed = run_batch(task, [0, 1, 2], paths, BatchSettings())
    assert resumed.skipped == 2 and resumed.ran == ["002"]
    assert list(resumed.tables["status"]["item"]) == ["000", "001", "002"]
    assert not journal.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000.json",
        "001.json",
        "002.json",
        "parts.parquet",
        "status.parquet",
    ]


def test_kill_9_of_the_driver_then_rerun_equals_an_uninterrupted_run(tmp_path):
    clean = run_square(tmp_path / "clean", ITEMS)
    out = tmp_path / "killed"
    out.mkdir()
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; import test_batch as t; "
        "t.run_square(Path(sys.argv[2]), t.ITEMS, sleep=0.3)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT / "tests"), str(out)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(out.glob("*.json"))) < 4:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done_before = len(list(out.glob("*.json")))
    assert 4 <= done_before < len(ITEMS)
    resumed = run_square(out, ITEMS)
    assert resumed.skipped >= done_before - 1  # at most the item being written when killed is redone
    assert_same_tables(comparable(clean), comparable(resumed))
    leftovers = [p.name for p in out.iterdir() if not p.name.endswith((".json", ".parquet"))]
    assert leftovers == []


# ----------------------------------------------------------------------------------------------
# Ray
# ----------------------------------------------------------------------------------------------
ray = pytest.importorskip("ray")


@pytest.fixture
def ray_pickles_this_module():
    """Ray workers import modules by name; this test module is not installed, so it travels by value."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


@dataclass
class ModelSquareTask(SquareTask):
    """The same, as a model stage: Ray actors that set up once."""

    uses_model = True

    def setup(self) -> None:
        self.loaded_in = os.getpid()


def test_ray_local_instance_gives_the_same_tables(tmp_path, ray_pickles_this_module):
    local = run_square(tmp_path / "local", ITEMS, bad=(4,))
    on_ray = run_square(tmp_path / "ray", ITEMS, bad=(4,), ray="local", workers=2)
    assert_same_tables(comparable(local), comparable(on_ray))
    assert os.getpid() not in set(on_ray.tables["status"]["pid"])  # the items ran in Ray workers
    task = ModelSquareTask(tmp_path / "actors")
    (tmp_path / "actors").mkdir()
    paths = {"status": tmp_path / "actors" / "status.parquet", "parts": tmp_path / "actors" / "parts.parquet"}
    actors = run_batch(task, ITEMS, paths, BatchSettings(ray="local", workers=2, gpus_per_worker=0))
    assert_same_tables(comparable(run_square(tmp_path / "again", ITEMS)), comparable(actors))
    assert len(set(actors.tables["status"]["pid"])) == 2  # two actors, each loaded once, did every item


def test_two_node_ray_cluster_survives_a_killed_worker(tmp_path, ray_pickles_this_module):
    from ray.cluster_utils import Cluster

    clean = run_square(tmp_path / "clean", ITEMS)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        tasks = run_square(tmp_path / "tasks", ITEMS, ray=cluster.address, workers=2, die=(2, 9))
        assert_same_tables(comparable(clean), comparable(tasks))
        assert (tmp_path / "tasks" / "died-2").exists() and (tmp_path / "tasks" / "died-9").exists()
        task = ModelSquareTask(tmp_path / "actors", die=(5,))
        (tmp_path / "actors").mkdir()
        paths = {"status": tmp_path / "actors" / "status.parquet", "parts": tmp_path / "actors" / "parts.parquet"}
        actors = run_batch(task, ITEMS, paths, BatchSettings(ray=cluster.address, workers=2, gpus_per_worker=0))
        assert_same_tables(comparable(clean), comparable(actors))
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_engine_outputs_follow_the_umask(tmp_path):
    """Tables (and nothing private left behind) readable by colleagues on a shared cluster."""
    old = os.umask(0o022)
    try:
        run_square(tmp_path / "a", ITEMS[:3], workers=2)
    finally:
        os.umask(old)
    for name in ("status.parquet", "parts.parquet", "000.json"):
        assert (tmp_path / "a" / name).stat().st_mode & 0o777 == 0o644, name
