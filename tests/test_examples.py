"""examples/ stays true to the tool: config.yaml is exactly the defaults, labels.csv reads as a corpus's
labels, and run_paper_grid.sh asks only for backbones and options that exist."""
from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
import yaml

from hilbert_cli.features.backbones import AUDIO, BACKBONES, TEXT
from hilbert_cli.cli import app
from hilbert_cli.learn.config import SECTIONS, HilbertConfig, load_config
from hilbert_cli.corpus.reading import read_corpus

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_config_yaml_is_every_hyperparameter_at_its_default():
    raw = yaml.safe_load((EXAMPLES / "config.yaml").read_text(encoding="utf-8"))
    assert set(raw) == {"configuration", *SECTIONS}
    for name, klass in SECTIONS.items():
        assert set(raw[name]) == {f.name for f in dataclasses.fields(klass)}, f"examples/config.yaml: section {name}"
    assert load_config(EXAMPLES / "config.yaml").to_dict() == HilbertConfig().to_dict()
    assert raw["loss"]["losses"] is None  # "the configuration's default", so changing configuration keeps it right


def test_labels_csv_reads_as_a_corpus(tmp_path):
    shutil.copy(EXAMPLES / "labels.csv", tmp_path / "labels.csv")
    ids = [line.split(",")[0] for line in (EXAMPLES / "labels.csv").read_text().splitlines()[1:]]
    for doc_id in ids:
        sf.write(tmp_path / f"{doc_id}.wav", np.zeros(1600, np.float32), 16000)
    corpus = read_corpus(tmp_path)
    assert corpus.problems == [] and len(corpus.documents) == len(ids) == 10
    assert corpus.tasks == ["diagnosis", "severity", "depression"]
    docs = {d.doc_id: d for d in corpus.documents}
    assert docs["int004"].labels["depression"] is None and docs["int009"].labels["severity"] is None
    assert docs["int001"].subject == docs["int002"].subject == "S01"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_paper_grid_script_uses_known_backbones_and_options():
    env = dict(os.environ, DRY_RUN="1", FOLDS="5", TASKS="a,b", WORKSPACE="ws", ALLOW_DOWNLOAD="1")
    out = subprocess.run(["bash", str(EXAMPLES / "run_paper_grid.sh"), "corpus"], env=env, capture_output=True,
                         text=True, check=True).stdout
    commands = [shlex.split(line) for line in out.splitlines()]
    assert commands[0] == ["hilbert", "segment", "corpus", "-w", "ws", "--allow-download"]
    evaluate = commands[1:]
    pairs = [(c[c.index("--text") + 1], c[c.index("--audio") + 1]) for c in evaluate]
    assert len(pairs) == len(set(pairs)) == 11  # 6 pairs per table, one shared
    for text, audio in pairs:
        assert BACKBONES[text].kind == TEXT and BACKBONES[audio].kind == AUDIO
    assert all(c[c.index("--folds") + 1] == "5" and c[c.index("--task") + 1] == "a,b" for c in evaluate)
    # every option the script passes exists on the real commands
    group = typer.main.get_command(app)
    for c in commands:
        assert c[1] in group.commands, f"run_paper_grid.sh calls `hilbert {c[1]}`, which does not exist"
        params = {opt for p in group.commands[c[1]].params for opt in p.opts}
        assert {a for a in c[2:] if a.startswith("-")} <= params, c
    custom = subprocess.run(["bash", str(EXAMPLES / "run_paper_grid.sh"), "corpus", "table2"],
                            env=dict(env, PAIRS="minilm:whisper-tiny"), capture_output=True, text=True, check=True).stdout
    assert custom.splitlines()[1].split()[4:8] == ["--audio", "whisper-tiny", "--text", "minilm"]
    assert all(c[c.index("--name") + 1] == f"paper-{t}-{a}" for c, (t, a) in zip(evaluate, pairs))
