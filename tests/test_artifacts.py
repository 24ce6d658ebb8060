import numpy as np
import pandas as pd
import pytest

from stages.core import artifacts as art
from stages.core.errors import RealcamError


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "t.txt"
    art.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with art.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]  # no temp file left


def test_atomic_dir_replaces_whole(tmp_path):
    target = tmp_path / "clip"
    with art.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with art.atomic_dir(target) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with art.atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def test_table_and_array_round_trip(tmp_path):
    df = pd.DataFrame({"item": ["a", "b"], "x": [1.5, np.nan], "n": [1, 2]})
    back = art.read_table(art.write_table(tmp_path / "t.parquet", df))
    pd.testing.assert_frame_equal(back, df)
    with pytest.raises(RealcamError, match="lacks column"):
        art.read_table(tmp_path / "t.parquet", columns=["item", "missing"])
    arr = np.arange(12, dtype=np.float16).reshape(3, 4)
    out = art.read_arrays(art.write_arrays(tmp_path / "a.npz", depth=arr), keys=["depth"])
    np.testing.assert_array_equal(out["depth"], arr)
    assert out["depth"].dtype == np.float16
    with pytest.raises(RealcamError, match="lacks key"):
        art.read_arrays(tmp_path / "a.npz", keys=["masks"])
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(RealcamError, match="junk.parquet: not a readable Parquet"):
        art.read_table(tmp_path / "junk.parquet")


def test_status_rows_merge_and_skip(tmp_path):
    first = art.status_frame([art.ItemStatus("a"), art.ItemStatus.failed("b", "no frames")])
    assert list(first.columns) == art.STATUS_COLUMNS
    path = art.write_table(tmp_path / "status.parquet", first)
    assert art.done_items(path) == {"a"}
    second = art.status_frame([art.ItemStatus("b")])
    merged = art.merge_rows(art.read_table(path), second)
    assert sorted(merged["item"]) == ["a", "b"] and set(merged["status"]) == {"ok"}
    out = tmp_path / "a.npz"
    assert not art.should_skip("a", {"a"}, [out], overwrite=False)  # output missing: redo
    out.write_bytes(b"x")
    assert art.should_skip("a", {"a"}, [out], overwrite=False)
    assert not art.should_skip("a", {"a"}, [out], overwrite=True)
    assert not art.should_skip("b", {"a"}, [out], overwrite=False)


def test_outputs_follow_the_umask(tmp_path):
    """Atomic outputs are made as private temporaries and renamed: they must still get the mode a
    plain create would (0644 / 0755 under umask 022), or colleagues cannot read a shared dataset."""
    import os

    from stages.core.artifacts import atomic_dir, atomic_write_text, write_table

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_table(tmp_path / "t.parquet", __import__("pandas").DataFrame({"a": [1]}))
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
        assert oct((tmp_path / "a.txt").stat().st_mode & 0o777) == "0o644"
        assert oct((tmp_path / "t.parquet").stat().st_mode & 0o777) == "0o644"
        assert oct((tmp_path / "d").stat().st_mode & 0o777) == "0o755"
        os.umask(0o027)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert oct((tmp_path / "b.txt").stat().st_mode & 0o777) == "0o640"
    finally:
        os.umask(old)
