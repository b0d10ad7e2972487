"""The model learns the mechanism each suite task was built for (small instances), and its explanations
point at the segments that carry the label: joint attention and occlusion on the needle task."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hilbert_cli import HilbertClassifier
from hilbert_cli.evaluation.tasks import make_task

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = dict(n_docs=160, d_audio=32, d_text=32, segments=(8, 14))
FAST = {"train.epochs": 30}


def _split_fit(configuration, task, over=None):
    y = np.asarray(task.y)
    tr, te = np.arange(len(y)) < 120, np.arange(len(y)) >= 120
    pick = lambda xs, m: [xs[i] for i in np.flatnonzero(m)]  # noqa: E731
    clf = HilbertClassifier(configuration, {**FAST, **(over or {})}, device="cpu").fit(pick(task.A, tr), pick(task.T, tr), y[tr])
    ex = clf.explain(pick(task.A, te), pick(task.T, te))
    proba = np.stack([e["proba"] for e in ex])
    return roc_auc_score(y[te], proba, multi_class="ovr"), ex, np.flatnonzero(te)


def test_mean_shift_is_learned_by_the_transfer_baseline():
    auc, _, _ = _split_fit("transfer", make_task("mean-shift", seed=3, strength=1.5, **SMALL))
    assert auc > 0.75, auc


@pytest.mark.parametrize("scores", ["context", "segment"])
def test_needle_joint_attention_and_occlusion_find_the_needles(scores):
    task = make_task("needle-strong", seed=7, strength=1.5, **{**SMALL, "segments": (20, 30)})
    auc, ex, idx = _split_fit("hilbert", task, {"model.pool_scores": scores})
    assert auc > 0.9, auc
    uniform = np.mean([task.needles[i].mean() for i in idx])
    on_needles = np.mean([e["alpha_j"][task.needles[i]].sum() for e, i in zip(ex, idx)])
    assert on_needles >= 3 * uniform, (on_needles, uniform)
    hits = [task.needles[i][np.argsort(-e["occlusion"])[:3]].any() for e, i in zip(ex, idx) if task.needles[i].any()]
    assert np.mean(hits) >= 0.8, np.mean(hits)


def test_order_needs_segment_positions():
    task = make_task("order", seed=9, strength=3.0, **SMALL)
    auc, _, _ = _split_fit("hilbert", task, {"loss.losses": [], "model.positions": 4})
    without, _, _ = _split_fit("hilbert", task, {"loss.losses": [], "model.positions": 0})
    assert auc > 0.8 and auc > without + 0.2 and without < 0.65, (auc, without)


def test_agreement_needs_the_interaction_pooling():
    """The label lies only in whether a segment's audio and text directions agree: the rank-r interaction
    pooling (model.interaction) learns it, the same model without it does not."""
    task = make_task("agreement", seed=11, strength=1.5, n_docs=240, d_audio=32, d_text=32, segments=(12, 16))
    y = np.asarray(task.y)
    fit, test = np.arange(len(y)) < 160, np.arange(len(y)) >= 160
    pick = lambda xs, m: [xs[i] for i in np.flatnonzero(m)]  # noqa: E731
    aucs = {}
    for rank in (8, 0):
        clf = HilbertClassifier("hilbert", {"train.epochs": 40, "loss.losses": [], "model.interaction": rank},
                                device="cpu").fit(pick(task.A, fit), pick(task.T, fit), y[fit])
        aucs[rank] = roc_auc_score(y[test], clf.predict_proba(pick(task.A, test), pick(task.T, test)), multi_class="ovr")
    assert aucs[8] > 0.6 and aucs[8] > aucs[0] + 0.1, aucs
