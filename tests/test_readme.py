"""The README's two set-up commands exist, CI runs the test one, and the main job's `ipad` steps
work as written."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import warnings
from pathlib import Path

from ipad_sdk.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _command(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {re.escape(marker)} -->\n```bash\n(.+?)\n```", text)
    assert match, f"README.md has no command after <!-- {marker} -->"
    return match.group(1)


def test_ci_extracts_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    awk = re.search(r"cmd=\$\((awk .+? README\.md)\)", script)
    assert awk, ".ci/run must take the test command from README.md"
    got = subprocess.run(
        ["bash", "-c", awk.group(1)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert got == _command("ci:test-command")
    assert got.endswith("pytest")


def test_main_command_runs_as_written(tmp_path, monkeypatch):
    steps = [s.strip() for s in _command("main-command").split("&&")]
    ipad_steps = [shlex.split(s)[1:] for s in steps if s.startswith("ipad ")]
    assert [s[0] for s in ipad_steps] == ["detect"]
    assert "--model" not in ipad_steps[0]  # the embedded default model
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for argv in ipad_steps:
            assert main([*argv, "--quiet"] if argv[0] == "detect" else argv) == 0
    records = [json.loads(line) for line in Path("out/results.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["source"] == "examples/kodim03.jpg"
    assert records[0]["label"] in ("clean", "ghosting", "flare", "moire")
    assert (records[0]["width"], records[0]["height"]) == (768, 512)
    assert (
        Path("out", records[0]["mask"]).is_file() and Path("out", records[0]["overlay"]).is_file()
    )
