"""The README's quickstart runs as written, so the README cannot drift from the tool.

The commands are taken from README.md itself: the fenced ```bash block right under the heading
`## Quickstart`. Every `hilbert ...` command runs, in order, in a fresh temporary folder (the working
directory; HILBERT_WORKSPACE unset, so the workspace is the default ./hilbert-work), through the
installed `hilbert` console script, offline. Two changes keep the test within a few minutes, and only
these two:
  - `hilbert demo-data` gets `--n-docs 12` (12 interviews instead of 60; the demo still gives every
    `spectrum` class the 2 documents `train` and `evaluate` need);
  - `hilbert evaluate` gets `--folds 3` (3-fold instead of 25-fold cross-validation).
`pip install ...` and `python -m pytest` lines are skipped (CI runs those itself: .ci/run); any other
command in the block fails the test, so that a new quickstart step is never silently left untested.
Then the files the commands promise must exist: the corpus, the workspace, model.pt, runs/*/report.md,
and a prediction for every recording `predict` was given.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "## Quickstart"
SMALL = {"demo-data": ["--n-docs", "12"], "evaluate": ["--folds", "3"]}  # the only changes (module docstring)
SKIPPED = (("pip", "install"), ("python", "-m", "pytest"), ("python3", "-m", "pytest"))
TIMEOUT = 900  # seconds for one command: a hang fails the test instead of stalling CI


def quickstart_commands(text: str) -> list[list[str]]:
    """The commands (as argument lists) of the ```bash block right under `## Quickstart`; `a && b`
    gives two commands, a trailing backslash continues a line, # starts a comment."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == HEADING)
    except StopIteration:
        raise AssertionError(f"{README}: no '{HEADING}' heading") from None
    body = lines[start + 1:]
    fence = next((i for i, line in enumerate(body) if line.strip().startswith("```")), None)
    assert fence is not None and body[fence].strip() in ("```bash", "```sh", "```console"), \
        f"{README}: no ```bash block under '{HEADING}'"
    assert all(not line.startswith("#") for line in body[:fence]), f"{README}: the block must come before the next heading"
    block = []
    for line in body[fence + 1:]:
        if line.strip().startswith("```"):
            break
        block.append(line)
    else:
        raise AssertionError(f"{README}: the ```bash block under '{HEADING}' is not closed")
    joined = re.sub(r"\\\n", " ", "\n".join(block))
    commands = []
    for line in joined.splitlines():
        line = line.strip().removeprefix("$ ")
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            commands.append(shlex.split(part, comments=True))
    return [c for c in commands if c]


def _hilbert() -> list[str]:
    script = Path(sys.executable).with_name("hilbert")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hilbert_cli"]


def test_quickstart_parser():
    text = ("# tool\n\n## Quickstart\nSome words.\n```bash\npip install torch==2.13.0 .\nhilbert demo-data demo  # corpus\n"
            "hilbert evaluate --task a,b \\\n  --audio hubert\n\npip install pytest && python -m pytest\n```\n## Next\n")
    assert quickstart_commands(text) == [
        ["pip", "install", "torch==2.13.0", "."], ["hilbert", "demo-data", "demo"],
        ["hilbert", "evaluate", "--task", "a,b", "--audio", "hubert"], ["pip", "install", "pytest"],
        ["python", "-m", "pytest"],
    ]
    with pytest.raises(AssertionError, match="no '## Quickstart'"):
        quickstart_commands("# tool\n")


@pytest.mark.slow
def test_readme_quickstart_runs(tmp_path):
    commands = quickstart_commands(README.read_text(encoding="utf-8"))
    hilbert_lines = [c for c in commands if c[0] == "hilbert"]
    assert hilbert_lines, f"{README}: the quickstart runs no hilbert command"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COLUMNS="120")
    env.pop("HILBERT_WORKSPACE", None)
    outputs = []
    for cmd in commands:
        if cmd[0] != "hilbert":
            assert any(tuple(cmd[:len(s)]) == s for s in SKIPPED), \
                f"quickstart command {shlex.join(cmd)!r} is not run by this test; teach tests/test_readme.py about it"
            continue
        args = cmd[1:] + SMALL.get(cmd[1] if len(cmd) > 1 else "", [])
        run = subprocess.run(_hilbert() + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert run.returncode == 0, (
            f"`{shlex.join(['hilbert', *args])}` exited {run.returncode}\n--- stdout\n{run.stdout[-4000:]}\n"
            f"--- stderr\n{run.stderr[-4000:]}"
        )
        outputs.append((args, run.stdout))

    ws = tmp_path / "hilbert-work"
    for args, stdout in outputs:
        verb, rest = args[0], args[1:]
        if verb == "demo-data":
            assert (tmp_path / rest[0] / "labels.csv").is_file()
        elif verb == "segment":
            assert (ws / "corpus.json").is_file() and any((ws / "segments").glob("*.json"))
        elif verb == "evaluate":
            reports = list((ws / "runs").glob("*/report.md"))
            assert reports and all(r.stat().st_size > 0 for r in reports)
        elif verb == "train":
            out = next((rest[i + 1] for i, a in enumerate(rest[:-1]) if a in ("-o", "--output")), "model.pt")
            assert (tmp_path / out).is_file()
        elif verb == "predict":
            recordings = []
            for target in (tmp_path / a for a in rest[1:] if not a.startswith("-")):
                if target.is_dir():
                    recordings += [p for p in target.iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3")]
                elif target.is_file():
                    recordings.append(target)
            assert recordings, f"predict {rest}: no recording found among its arguments"
            for rec in recordings:
                assert rec.name in stdout, f"no prediction printed for {rec.name}"
