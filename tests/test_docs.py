"""docs/method.md against the code: every ``path.py:Name`` and ``tests/x.py::test_name`` it names
exists, every section names its code and the tests that pin it, every ``docs/method.md#anchor``
cited in the code is a heading of the file, and no source cites the method specification the
repository does not ship.

Fast: the files are read and parsed with ``ast``; nothing of the project is imported.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"
#: folders whose ``.py`` files may cite sections of docs/method.md
CITING_DIRS = ("stages", "realcam_cli", "examples", "benchmarks")
#: sections of prose rather than a formula (by anchor): no ``Code:`` / ``Pinned by:`` needed
PROSE_SECTIONS = {"adding-a-formula"}

#: `stages/diffusion.py:sample` or `stages/diffusion.py:Schedule.timesteps`, in backticks
CODE_REF = re.compile(r"`((?:[\w.-]+/)*[\w.-]+\.py):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)`")
#: `tests/test_diffusion.py::test_noise_shaping_formula`, in backticks
TEST_REF = re.compile(r"`(tests/(?:[\w.-]+/)*[\w.-]+\.py)::([A-Za-z_]\w*)`")
CITATION = re.compile(r"docs/method\.md#([\w-]*)")
# The name of the unshipped specification, spelled in two parts so that this file does not match.
_PRIVATE = "SPEC"
PRIVATE_CITATION = re.compile(_PRIVATE + r"(?:\.md|\s+section)")


# ----------------------------------------------------------------------------------------------
# Reading docs/method.md
# ----------------------------------------------------------------------------------------------
def _method_text() -> str:
    return METHOD.read_text(encoding="utf-8") if METHOD.is_file() else ""


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text lowercased, every character that is not a
    letter, digit, underscore, hyphen or space removed, spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link shows its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def sections(text: str) -> list[tuple[str, str, list[str]]]:
    """``(heading, anchor, body lines)`` of each ``## `` section (fenced code is skipped);
    repeated anchors get ``-1``, ``-2``, ... as on GitHub."""
    out: list[tuple[str, str, list[str]]] = []
    seen: dict[str, int] = {}
    fenced = False
    body: list[str] | None = None  # the lines of the current section (None before the first)
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            heading = line[3:].strip()
            anchor = github_anchor(heading)
            if anchor in seen:
                seen[anchor] += 1
                anchor = f"{anchor}-{seen[anchor]}"
            else:
                seen[anchor] = 0
            body = []
            out.append((heading, anchor, body))
        elif not fenced and line.startswith("# "):
            body = None  # a title ends the section before it
        elif body is not None:
            body.append(line)
    return out


def method_anchors(text: str) -> set[str]:
    return {anchor for _, anchor, _ in sections(text)}


def formula_sections(text: str) -> list[tuple[str, str, list[str]]]:
    return [s for s in sections(text) if s[1] not in PROSE_SECTIONS]


_TEXT = _method_text()
CODE_REFS = sorted(set(CODE_REF.findall(_TEXT)))
TEST_REFS = sorted(set(TEST_REF.findall(_TEXT)))
FORMULA_SECTIONS = formula_sections(_TEXT)


# ----------------------------------------------------------------------------------------------
# Reading the code
# ----------------------------------------------------------------------------------------------
def _module_statements(tree: ast.Module):
    """Module-level statements, including those inside module-level ``if`` / ``try`` / ``with``."""
    stack = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(reversed(getattr(node, block, []) or []))
        elif isinstance(node, ast.ExceptHandler):
            stack.extend(reversed(node.body))


@cache
def definitions(path: str) -> dict[str, frozenset[str] | None]:
    """Top-level functions (``None``) and classes (the names of their methods) of a file."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)
    out: dict[str, frozenset[str] | None] = {}
    for node in _module_statements(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = None
        elif isinstance(node, ast.ClassDef):
            out[node.name] = frozenset(
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            )
    return out


def _python_files(*folders: str):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if not any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                yield rel


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------
def test_method_doc_exists_and_names_code_and_tests():
    assert METHOD.is_file(), "docs/method.md is missing"
    assert CODE_REFS and TEST_REFS and FORMULA_SECTIONS


@pytest.mark.parametrize("path,name", CODE_REFS, ids=[f"{p}:{n}" for p, n in CODE_REFS])
def test_code_reference_exists(path, name):
    assert (ROOT / path).is_file(), f"docs/method.md names `{path}:{name}`, but there is no {path}"
    defs = definitions(path)
    top, _, method = name.partition(".")
    assert top in defs, f"docs/method.md names `{path}:{name}`, but {path} defines no top-level {top}"
    if method:
        assert defs[top] is not None, f"docs/method.md names `{path}:{name}`, but {top} is not a class"
        assert method in defs[top], f"docs/method.md names `{path}:{name}`, but class {top} has no {method}"


@pytest.mark.parametrize("path,name", TEST_REFS, ids=[f"{p}::{n}" for p, n in TEST_REFS])
def test_test_reference_exists(path, name):
    assert (ROOT / path).is_file(), f"docs/method.md names `{path}::{name}`, but there is no {path}"
    defs = definitions(path)
    in_class = any(methods is not None and name in methods for methods in defs.values())
    assert (name in defs and defs[name] is None) or in_class, (
        f"docs/method.md names `{path}::{name}`, but {path} has no test function {name}"
    )


@pytest.mark.parametrize("heading,anchor,body", FORMULA_SECTIONS, ids=[s[1] for s in FORMULA_SECTIONS])
def test_every_section_names_its_code_and_tests(heading, anchor, body):
    code = [line for line in body if line.startswith("Code:") and CODE_REF.search(line)]
    pinned = [line for line in body if line.startswith("Pinned by:") and TEST_REF.search(line)]
    assert code, f"section '## {heading}' has no 'Code: `path.py:name`' line"
    assert pinned, f"section '## {heading}' has no 'Pinned by: `tests/x.py::test_name`' line"


def test_github_anchor_rules():
    assert github_anchor("Metric factor") == "metric-factor"
    assert github_anchor("FVD and FID") == "fvd-and-fid"
    assert github_anchor("SE(3) interpolation, with `slerp`!") == "se3-interpolation-with-slerp"
    assert github_anchor("Noise-shaping mask") == "noise-shaping-mask"
    assert [s[1] for s in sections("## A b\n## A b\n## A-b\n")] == ["a-b", "a-b-1", "a-b-2"]


def test_code_cites_existing_method_sections():
    anchors = method_anchors(_TEXT)
    bad = []
    for rel in _python_files(*CITING_DIRS):
        for lineno, line in enumerate((ROOT / rel).read_text(encoding="utf-8").splitlines(), 1):
            bad.extend(f"{rel}:{lineno}: docs/method.md#{a}" for a in CITATION.findall(line) if a not in anchors)
    assert not bad, "citations of sections docs/method.md does not have:\n" + "\n".join(bad)


def test_no_source_cites_the_unshipped_specification():
    bad = []
    for rel in _python_files(*CITING_DIRS, "tests"):
        for lineno, line in enumerate((ROOT / rel).read_text(encoding="utf-8").splitlines(), 1):
            if PRIVATE_CITATION.search(line):
                bad.append(f"{rel}:{lineno}: {line.strip()}")
    assert not bad, (
        "the specification is not in the repository; cite docs/method.md#anchor, "
        "README.md or docs/ instead:\n" + "\n".join(bad)
    )
