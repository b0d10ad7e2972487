"""Metrics against independent computations: scikit-learn, scipy, and small cases by hand."""
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, roc_auc_score

from hilbert_cli.evaluation import metrics as M


def _random_proba(rng, n, c, decimals=2):
    p = np.round(rng.dirichlet(np.ones(c), n), decimals)  # rounding makes ties, which AUC must halve
    return p / p.sum(axis=1, keepdims=True)


def test_auc_small_case_by_hand():
    # pairs (pos, neg): (0.35,0.1)+ (0.35,0.4)- (0.8,0.1)+ (0.8,0.4)+ -> 3/4
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    assert M.roc_auc(y, np.stack([1 - p1, p1], 1)) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half: (0.4,0.1)+ (0.4,0.4)= -> 1.5/2
    p1 = np.array([0.1, 0.4, 0.4])
    assert M.roc_auc(np.array([0, 0, 1]), np.stack([1 - p1, p1], 1)) == pytest.approx(0.75)


@pytest.mark.parametrize("c", [2, 3, 4])
def test_auc_matches_sklearn(c):
    rng = np.random.default_rng(c)
    y = rng.integers(0, c, 300)
    p = _random_proba(rng, 300, c)
    ref = roc_auc_score(y, p[:, 1]) if c == 2 else roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert M.roc_auc(y, p) == pytest.approx(ref, abs=1e-12)
    per_class = M.per_class_auc(y, p)
    for k in range(c):
        assert per_class[k] == pytest.approx(roc_auc_score(y == k, p[:, k]), abs=1e-12)


def test_auc_undefined_when_a_class_is_missing():
    rng = np.random.default_rng(0)
    p = _random_proba(rng, 6, 3)
    assert M.roc_auc(np.array([0, 1, 0, 1, 0, 1]), p) is None  # class 2 absent: macro OvR undefined
    assert M.roc_auc(np.zeros(4, int), _random_proba(rng, 4, 2)) is None
    assert M.per_class_auc(np.array([0, 1, 0, 1, 0, 1]), p)[2] is None


def test_weighted_auc_equals_auc_of_the_resampled_data():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 80)
    p = _random_proba(rng, 80, 3, decimals=1)
    w = M.stratified_bootstrap_counts(y, n_resamples=5, seed=3)
    got = M.auc_weighted(y, p, w)
    for r in range(5):
        idx = np.repeat(np.arange(80), w[r].astype(int))  # the resample written out
        ref = roc_auc_score(y[idx], p[idx], multi_class="ovr", average="macro")
        assert got[r] == pytest.approx(ref, abs=1e-12)


def test_stratified_bootstrap_keeps_class_counts_and_is_seeded():
    y = np.array([0] * 7 + [1] * 3 + [2] * 11)
    w = M.stratified_bootstrap_counts(y, 200, seed=5)
    for c in range(3):
        assert np.all(w[:, y == c].sum(axis=1) == (y == c).sum())
    assert np.array_equal(w, M.stratified_bootstrap_counts(y, 200, seed=5))
    assert not np.array_equal(w, M.stratified_bootstrap_counts(y, 200, seed=6))


def test_bootstrap_ci_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(2)

    def data(n):
        y = rng.integers(0, 2, n)
        s = y * 0.5 + rng.normal(size=n)
        return y, np.stack([-s, s], 1)

    y, p = data(100)
    lo, hi = M.bootstrap_auc_ci(y, p, seed=0)
    assert lo < M.roc_auc(y, p) < hi
    y2, p2 = data(2000)
    lo2, hi2 = M.bootstrap_auc_ci(y2, p2, seed=0)
    assert hi2 - lo2 < (hi - lo) * 0.5


def test_nadeau_bengio_formula():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.6, 0.8, 25), rng.uniform(0.55, 0.75, 25)
    n_train, n_test = 480.0, 20.0
    d = a - b
    t_ref = d.mean() / np.sqrt((1 / 25 + n_test / n_train) * d.var(ddof=1))
    p_ref = 2 * stats.t.sf(abs(t_ref), 24)
    r = M.corrected_resampled_ttest(a, b, n_train, n_test)
    assert r["t"] == pytest.approx(t_ref) and r["p"] == pytest.approx(p_ref) and r["n_folds"] == 25
    # without the correction term it is the ordinary paired t-test
    plain = M.corrected_resampled_ttest(a, b, n_train=1e18, n_test=0.0)
    assert plain["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert r["p"] > plain["p"]  # the correction is conservative


def test_ttest_skips_undefined_folds():
    a = [0.7, None, 0.8, 0.75, 0.6]
    b = [0.6, 0.5, None, 0.7, 0.55]
    r = M.corrected_resampled_ttest(a, b, 80, 20)
    d = np.array([0.1, 0.05, 0.05])
    t_ref = d.mean() / np.sqrt((1 / 3 + 20 / 80) * d.var(ddof=1))
    assert r["n_folds"] == 3 and r["t"] == pytest.approx(t_ref)


def test_paired_bootstrap():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    good = y + rng.normal(scale=0.7, size=300)
    bad = rng.normal(size=300)
    P = lambda s: np.stack([-s, s], 1)
    same = M.paired_bootstrap_test(y, P(good), P(good))
    assert same["diff"] == 0 and same["p"] == 1.0
    r = M.paired_bootstrap_test(y, P(good), P(bad))
    assert r["diff"] == pytest.approx(roc_auc_score(y, good) - roc_auc_score(y, bad))
    assert r["p"] < 0.01 and r["diff_ci"][0] > 0


def test_summarize_matches_sklearn():
    rng = np.random.default_rng(5)
    n, c, k = 90, 3, 5
    y = np.array([0, 1, 2] * 30)
    p = _random_proba(rng, n, c)
    fold = np.arange(n) % k
    fold[y == 2] = np.where(fold[y == 2] == 4, 3, fold[y == 2])  # fold 4 has no class 2
    s = M.summarize(y, p, fold, c, seed=0, n_resamples=200)
    pred = p.argmax(1)
    assert s["auc_pooled"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))
    assert s["auc_folds"][4] is None and s["n_folds_defined"] == 4
    defined = [roc_auc_score(y[fold == i], p[fold == i], multi_class="ovr") for i in range(4)]
    assert s["auc_folds"][:4] == pytest.approx(defined)
    assert s["auc_mean"] == pytest.approx(np.mean(defined)) and s["auc_std"] == pytest.approx(np.std(defined, ddof=1))
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert s["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert s["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    lo, hi = s["auc_pooled_ci"]
    assert lo <= s["auc_pooled"] <= hi


# --- calibration ------------------------------------------------------------------------------------

def test_brier_score_matches_sklearn():
    import sklearn
    from sklearn.metrics import brier_score_loss, mean_squared_error

    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 300)
    p = _random_proba(rng, 300, 2)
    # binary: sklearn's convention, the positive class's squared error (not the sum over both classes)
    assert M.brier_score(y, p) == pytest.approx(brier_score_loss(y, p[:, 1]))
    assert M.brier_score(y, p) == pytest.approx(np.mean((p[:, 1] - y) ** 2))
    for c in (3, 4):
        y = rng.integers(0, c, 300)
        p = _random_proba(rng, 300, c)
        onehot = np.eye(c)[y]
        # multi-class: mean over documents of the squared error summed over classes
        assert M.brier_score(y, p) == pytest.approx(c * mean_squared_error(onehot, p))
        if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 7):  # multi-class brier_score_loss
            assert M.brier_score(y, p) == pytest.approx(brier_score_loss(y, p, labels=list(range(c))))
    assert M.brier_score([0, 1, 2], np.eye(3)) == 0.0


@pytest.mark.parametrize("bins", [5, 10, 7])
def test_reliability_curve_matches_sklearn_calibration_curve(bins):
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(bins)
    p1 = np.round(rng.uniform(size=400), 1)  # many probabilities exactly on bin edges (0.1, 0.2, ..., 0, 1)
    y = (rng.uniform(size=400) < p1).astype(int)
    curve = M.reliability_curve(y, np.c_[1 - p1, p1], bins=bins)
    observed, predicted = calibration_curve(y, p1, n_bins=bins, strategy="uniform")
    assert curve.kind == "positive class"
    assert np.allclose(curve.observed, observed) and np.allclose(curve.predicted, predicted)
    assert curve.count.sum() == 400
    # top label (multi-class, and binary when asked): confidence against whether the top label is right
    p = _random_proba(rng, 400, 3)
    y3 = rng.integers(0, 3, 400)
    top = M.reliability_curve(y3, p, bins=bins)
    observed, predicted = calibration_curve(p.argmax(1) == y3, p.max(1), n_bins=bins, strategy="uniform")
    assert top.kind == "top label" and np.allclose(top.observed, observed) and np.allclose(top.predicted, predicted)


def test_expected_calibration_error_by_hand():
    # 4 documents at confidence 0.9 (3 right) and 2 at 0.6 (both right): |0.75 - 0.9| * 4/6 + |1 - 0.6| * 2/6
    p = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
    y = np.array([0, 0, 0, 1, 1, 1])
    assert M.expected_calibration_error(y, p) == pytest.approx(0.15 * 4 / 6 + 0.4 * 2 / 6)
    # calibrated by construction: in every bin the frequency of being right equals the confidence
    p = np.array([[0.75, 0.25]] * 4 + [[0.5, 0.5]] * 2)
    assert M.expected_calibration_error(np.array([0, 0, 0, 1, 0, 1]), p) == pytest.approx(0.0)
    # bins matter: with 1 bin the two groups' errors cancel partly (mean confidence 0.8, accuracy 5/6)
    p = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
    assert M.expected_calibration_error(y, p, bins=1) == pytest.approx(abs(5 / 6 - 0.8))
    with pytest.raises(M.ConfigError, match="bins"):
        M.expected_calibration_error(y, p, bins=0)


def test_summarize_reports_calibration():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 60)
    p = _random_proba(rng, 60, 3)
    s = M.summarize(y, p, np.arange(60) % 3, 3, n_resamples=50)
    assert s["brier"] == M.brier_score(y, p) and s["ece"] == M.expected_calibration_error(y, p)
