"""The learning task suite (hilbert_cli/evaluation/tasks.py): determinism, shapes, and that each
mechanism puts the label where it says (checked with small instances and simple probes)."""
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hilbert_cli.evaluation import tasks
from hilbert_cli.evaluation.tasks import (MECHANISMS, SuiteTask, make_task, oracle_features, pooled_features,
                                         product_features)

SMALL = {"n_docs": 120, "d_audio": 64, "d_text": 64}


def cv_auc(X, y, C=1.0, seed=0):
    """Macro one-vs-rest AUC of 5-fold out-of-fold StandardScaler + LogisticRegression probabilities."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = cross_val_predict(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed), method="predict_proba")
    return roc_auc_score(y, proba, multi_class="ovr", average="macro")


def small(mechanism, seed=0, **kw):
    return make_task(mechanism, seed=seed, **{**SMALL, **kw})


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_deterministic_and_seeded(mechanism):
    a, b, c = small(mechanism), small(mechanism), small(mechanism, seed=1)
    assert all(np.array_equal(x, z) for x, z in zip(a.A, b.A)) and all(np.array_equal(x, z) for x, z in zip(a.T, b.T))
    assert np.array_equal(a.y, b.y) and np.array_equal(a.subjects, b.subjects)
    assert all(np.array_equal(x, z) for x, z in zip(a.needles, b.needles))
    assert not np.array_equal(a.A[0][:5], c.A[0][:5])


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_shapes_types_prior_needles(mechanism):
    t = small(mechanism)
    assert isinstance(t, SuiteTask) and t.name == mechanism and t.n_classes == 4
    n = len(t.y)
    assert n == 120 and len(t.A) == len(t.T) == len(t.needles) == len(t.subjects) == n
    for A, T, nd in zip(t.A, t.T, t.needles):
        assert A.dtype == np.float32 and T.dtype == np.float32
        assert A.shape[1] == 64 and T.shape[1] == 64 and A.shape[0] == T.shape[0] == nd.shape[0]
        assert tasks.SEGMENTS[0] <= A.shape[0] <= tasks.SEGMENTS[1] and nd.dtype == bool
    assert np.array_equal(np.bincount(t.y, minlength=4), [72, 30, 12, 6])  # 60/25/10/5 %
    counts = np.array([nd.sum() for nd in t.needles])
    lengths = np.array([len(nd) for nd in t.needles])
    if mechanism == "mean-shift":
        assert np.array_equal(counts, lengths)  # every segment carries the label
    elif mechanism in ("needle", "needle-strong", "small-n"):
        assert counts.min() >= tasks.NEEDLE_COUNT[0] and counts.max() <= tasks.NEEDLE_COUNT[1]
    elif mechanism == "order":
        assert (counts == tasks.ORDER_COUNT).all()
    elif mechanism == "agreement":
        assert 0.3 < counts.sum() / lengths.sum() < 0.6
    # the marked segments are the ones moved along the label directions: check on the needle task
    if mechanism == "needle":
        d = t.meta["dir_audio"]
        proj = [(A.astype(np.float64) @ d[c]) for A, c in zip(t.A, t.y)]
        on = np.concatenate([p[nd] - np.median(p) for p, nd in zip(proj, t.needles)])
        off = np.concatenate([p[~nd] - np.median(p) for p, nd in zip(proj, t.needles)])
        assert on.mean() > 0.8 * t.meta["amp"] and abs(off.mean()) < 0.5


def test_small_n_default_size_and_prior():
    t = make_task("small-n", d_audio=32, d_text=32)
    assert len(t.y) == tasks.N_DOCS_SMALL
    assert np.bincount(t.y, minlength=4).tolist() == [51, 21, 9, 4]


def test_unknown_mechanism_lists_valid_names():
    with pytest.raises(ValueError, match="needle-strong"):
        make_task("nope")


def test_nuisance_structure():
    t = small("order")
    A = np.concatenate(t.A).astype(np.float64)
    T = np.concatenate(t.T).astype(np.float64)
    noise_norm = np.sqrt(A.shape[1])
    assert np.linalg.norm(A.mean(axis=0)) > 5 * noise_norm  # a large common mean
    sv = np.linalg.svd(A - A.mean(axis=0), compute_uv=False) ** 2
    assert sv[0] / np.median(sv) > 10  # anisotropic
    # content factor: a segment's audio and text covary; pairing segments at random removes that
    Ac, Tc = A - A.mean(0), T - T.mean(0)
    cross = np.linalg.svd(Ac.T @ Tc / len(A), compute_uv=False)
    shuffled = np.linalg.svd(Ac.T @ Tc[np.random.default_rng(0).permutation(len(T))] / len(A), compute_uv=False)
    assert cross[0] > 3 * shuffled[0]


def test_mean_shift_is_visible_to_mean_pooling():
    t = small("mean-shift")
    assert cv_auc(pooled_features(t, "mean"), t.y, C=0.1) > 0.65


def test_needle_oracle_beats_mean_pooling():
    t = small("needle")
    lr = cv_auc(pooled_features(t, "mean"), t.y, C=0.1)
    oracle = cv_auc(oracle_features(t), t.y)
    assert oracle > lr + 0.1 and oracle > 0.85


def test_agreement_lives_only_in_the_interaction():
    t = small("agreement", n_docs=240)  # chance-level CV AUCs of 120 documents spread more than +-0.1
    for m in ("audio", "text"):
        for how in ("mean", "max"):
            auc = cv_auc(pooled_features(t, how, modalities=(m,)), t.y, C=0.1)
            assert abs(auc - 0.5) < 0.1, (m, how, auc)
    # per modality, the projections on a pair's direction (centred within each document, which
    # removes the subject offset) are distributed alike in the majority class and the others
    for m, docs in (("audio", t.A), ("text", t.T)):
        p = [x.astype(np.float64) @ t.meta[f"dir_{m}"][0] for x in docs]
        p = [v - v.mean() for v in p]
        p0 = np.concatenate([v for v, c in zip(p, t.y) if c == 0])
        p1 = np.concatenate([v for v, c in zip(p, t.y) if c != 0])
        assert abs(p0.std() / p1.std() - 1) < 0.08 and abs(np.mean(np.abs(p0)) / np.mean(np.abs(p1)) - 1) < 0.08
    assert cv_auc(oracle_features(t), t.y) > 0.8
    # learnable without knowing the planted directions: a logistic regression on each document's mean of its
    # segments' audio x text products (after PCA; benchmarks/bench_learning.py's LR(products))
    assert cv_auc(product_features(t, 16), t.y, C=0.1) > 0.85


def test_order_needs_position():
    t = small("order", n_docs=240)
    assert abs(cv_auc(pooled_features(t, "mean"), t.y, C=0.1) - 0.5) < 0.1
    assert cv_auc(oracle_features(t), t.y) > 0.9


def test_mean_ratio_only_scales_the_common_mean():
    a, b = small("needle"), small("needle", mean_ratio=0.0)
    centred_a = np.concatenate(a.A).astype(np.float64) - np.concatenate(b.A).astype(np.float64)
    assert np.allclose(centred_a, centred_a[0], atol=1e-3)  # the difference is one constant vector
    assert np.linalg.norm(centred_a[0]) == pytest.approx(tasks.MEAN_RATIO * 8.0, rel=1e-4)  # sqrt(64) = 8


def test_short_documents_keep_the_order_feature():
    t = make_task("order", n_docs=40, d_audio=16, d_text=16, segments=(6, 10))
    assert all(nd.sum() >= 1 for nd in t.needles)
    assert np.isfinite(oracle_features(t)).all()
