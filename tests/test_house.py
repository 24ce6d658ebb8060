"""The house rules that keep the code easy to carry on: an instant command line, no import cycles,
the library never importing the CLI, each shared constant defined once."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "realcam_cli")
HEAVY = ("torch", "scipy", "open3d", "transformers", "diffusers", "deepspeed", "pycolmap", "kornia", "viser")
SHARED_CLI = {"realcam_cli.ui", "realcam_cli.parsers", "realcam_cli.options"}  # what commands may share
STAGES = (
    "synth",
    "depth",
    "triangulate",
    "align-scale",
    "filter",
    "annotate",
    "train",
    "preview",
    "edit",
    "generate",
    "evaluate",
)

# Runs `realcam ARGS` in a fresh interpreter and prints what it imported (as JSON, last line).
PROBE = """
import json, sys
from realcam_cli.app import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(m.split(".")[0] for m in sys.modules)))
"""


def imported_by(*args: str) -> set[str]:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


def test_cli_help_imports_no_heavy_library():
    res = subprocess.run(
        [sys.executable, "-c", "import sys, realcam_cli.app; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    loaded = {m.split(".")[0] for m in res.stdout.split()}
    assert not loaded & set(HEAVY + ("pandas", "numpy", "pyarrow")), loaded & set(HEAVY)
    for stage in ("--help", *(f"{s} --help" for s in STAGES)):
        heavy = imported_by(*stage.split()) & set(HEAVY)
        assert not heavy, f"realcam {stage} imports {sorted(heavy)}"


def test_filter_run_imports_only_what_it_uses(tmp_path, pose_files):
    """`realcam filter` on a small table: pandas and pyarrow, not torch or scipy."""
    ds = tmp_path / "ds" / "cameras"
    ds.mkdir(parents=True)
    ids = [p.stem for p in pose_files]
    for p in pose_files:
        (ds / p.name).write_text(p.read_text())
    scales = tmp_path / "scales"
    scales.mkdir()
    factors = np.linspace(1.0, 2.0, len(ids))
    pd.DataFrame(
        {
            "clip_id": ids,
            "scale": factors,
            "scale_max": factors + 0.1,
            "scale_min": factors - 0.1,
            "scale_spread": 0.1,
            "n_frames": 2,
            "n_points": 100,
            "status": "ok",
            "reason": "",
        }
    ).to_parquet(scales / "clips.parquet")
    pd.DataFrame(
        {"clip_id": np.repeat(ids, 2), "frame": np.tile([0, 1], len(ids)), "timestamp": 0, "scale": 1.5, "n_points": 50}
    ).to_parquet(scales / "frames.parquet")
    loaded = imported_by("filter", str(scales), "--cameras", str(tmp_path / "ds"), "--out", str(tmp_path / "out"))
    assert (tmp_path / "out" / "keep.parquet").is_file()
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


# ----------------------------------------------------------------------------------------------
# Imports: the graph of every `import` (those inside functions included)
# ----------------------------------------------------------------------------------------------
def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in files:  # `from pkg import name`: the module, else the package
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a parent package runs first anyway
                    edges.add(t)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_import_graph_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_and_the_library_never_imports_the_cli():
    graph = import_graph()
    assert "stages.models.unet" in graph and "realcam_cli.app" in graph
    assert "stages.models.layers" in graph["stages.models.camera"]  # function-level imports count too
    assert cycles(graph) == []
    upward = sorted(
        (m, d) for m, deps in graph.items() if m.startswith("stages") for d in deps if d.startswith("realcam")
    )
    assert upward == []
    # the core depends on nothing above it
    core_up = sorted(
        (m, d)
        for m, deps in graph.items()
        if m.startswith("stages.core")
        for d in deps
        if d.startswith("stages.") and not d.startswith("stages.core")
    )
    assert core_up == []
    # commands register in app.py, which imports them: none imports app or another command
    for m, deps in graph.items():
        if m.startswith("realcam_cli.") and m not in ("realcam_cli.app", "realcam_cli.__main__"):
            assert not {d for d in deps if d.startswith("realcam_cli.")} - SHARED_CLI, m


# ----------------------------------------------------------------------------------------------
# Constants: each defined once
# ----------------------------------------------------------------------------------------------
def test_shared_constants_are_defined_once():
    tokenizer_ids, literal_defaults = [], []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and node.value == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K":
                    tokenizer_ids.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    args = node.args.args + node.args.kwonlyargs
                    defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
                    defaults += node.args.kw_defaults
                    for arg, default in zip(args, defaults):
                        if arg.arg in ("kernel", "latent_stride", "stride") and isinstance(default, ast.Constant):
                            literal_defaults.append(f"{path.relative_to(ROOT)}:{node.name}({arg.arg}={default.value})")
    assert len(tokenizer_ids) == 1 and tokenizer_ids[0].startswith("stages/core/constants.py"), tokenizer_ids
    assert literal_defaults == [], literal_defaults
