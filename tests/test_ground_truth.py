"""Ground truth: on the demo corpus, `hilbert evaluate` shows what the corpus was built to show.

The demo's `mood` label is carried by the words only, `prosody` by the voice only, and the
4-class `spectrum` (mood × prosody) needs both. So text-only must find mood, audio-only must find
prosody, and hilbert must beat both single modalities on spectrum. The whole pipeline runs for
real: demo-data -> segment -> embed (whisper-tiny + minilm) -> evaluate.
"""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hilbert_cli.demo import make_demo_corpus
from hilbert_cli.evaluate import evaluate
from hilbert_cli.segment import SegmentSettings, segment_corpus
from hilbert_cli.workspace import Workspace

N_DOCS = 48
FOLDS = 6


@pytest.mark.slow
def test_demo_corpus_ground_truth(tmp_path):
    corpus = tmp_path / "demo"
    make_demo_corpus(corpus, n_docs=N_DOCS, seed=0, min_seconds=20, max_seconds=30)
    ws = Workspace(tmp_path / "ws")
    segment_corpus(corpus, ws, SegmentSettings())
    r = evaluate(ws, "mood,prosody,spectrum", "text-only,audio-only,hilbert", "whisper-tiny", "minilm",
                 k=FOLDS, seed=0, run_name="truth")
    auc = {t: {c: r.metrics[t][c]["auc_pooled"] for c in r.metrics[t]} for t in r.metrics}
    print("\n" + (r.run_dir / "report.md").read_text().split("## AUC (%)")[1].split("##")[0])
    assert auc["mood"]["text-only"] > 0.8 and auc["mood"]["text-only"] > auc["mood"]["audio-only"] + 0.1
    assert auc["prosody"]["audio-only"] > 0.8 and auc["prosody"]["audio-only"] > auc["prosody"]["text-only"] + 0.1
    assert auc["spectrum"]["hilbert"] > max(auc["spectrum"]["text-only"], auc["spectrum"]["audio-only"])
