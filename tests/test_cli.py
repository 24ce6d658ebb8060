import subprocess
import sys

import pytest
from typer.testing import CliRunner

from realcam_cli.app import app
from stages import __version__

runner = CliRunner()
GOOD = "100 0.5 0.9 0.5 0.5 0 0 1 0 0 0.1 0 1 0 0.2 0 0 1 0.3"


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"realcam {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "synth" in result.stdout


@pytest.mark.parametrize(
    "body,expected",
    [
        (f"https://x\n{GOOD.replace('0.2', 'nan')}\n", ":2: non-finite number"),
        (f"https://x\n{GOOD} 1\n", ":2: expected 19 numbers on a camera line, found 20"),
        (f"https://x\n{GOOD.replace('1 0 0 0.1', '0.5 0 0 0.1')}\n", ":2: rotation is not orthonormal"),
        ("", ": empty camera file"),
    ],
)
def test_malformed_camera_file_gives_one_line_and_status_2(tmp_path, body, expected):
    bad = tmp_path / "bad.txt"
    bad.write_text(body)
    out = tmp_path / "out"
    result = runner.invoke(app, ["synth", "--poses", str(bad), "--out", str(out), "--size", "16x16"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {bad}") and expected in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing half-written


def test_bad_option_value(tmp_path, pose_files):
    result = runner.invoke(app, ["synth", "--poses", str(pose_files[0]), "--out", str(tmp_path), "--size", "big"])
    assert result.exit_code == 2 and "--size: expected WIDTHxHEIGHT" in result.stderr


def test_console_script_end_to_end(tmp_path, pose_files):
    """The installed entry point: a good run reports its outputs; a bad one fails cleanly."""
    out = tmp_path / "ds"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "realcam_cli",
            "synth",
            "--poses",
            str(pose_files[0]),
            str(pose_files[1]),
            "--out",
            str(out),
            "--size",
            "24x16",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert str(out) in ok.stdout
    assert (out / "truth.parquet").exists()
    assert len(list((out / "frames").iterdir())) == 2
    bad = tmp_path / "bad.txt"
    bad.write_text("https://x\n1 2 3\n")
    fail = subprocess.run(
        [sys.executable, "-m", "realcam_cli", "synth", "--poses", str(bad), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert fail.returncode == 2
    assert fail.stderr.strip() == f"error: {bad}:2: expected 19 numbers on a camera line, found 3"
    verbose = subprocess.run(
        [sys.executable, "-m", "realcam_cli", "--verbose", "synth", "--poses", str(bad), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr
