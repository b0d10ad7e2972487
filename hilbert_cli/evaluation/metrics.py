"""Metrics of an evaluation: ROC AUC per fold and pooled (with a bootstrap interval), and paired tests.

AUC convention (METHOD.md §8): binary -> AUC of the positive class, the SECOND label in order;
multi-class -> macro average of the one-vs-rest AUCs. A fold that lacks a class has no AUC
(None), and is left out of the fold mean; the pooled out-of-fold AUC uses every document.

The bootstrap AUCs are computed for all resamples at once: a resample is a vector of counts
(how often each document was drawn), and the AUC of a resample is the count-weighted
Mann-Whitney statistic, so no per-resample sorting is needed.

Calibration (how far the probabilities can be read as frequencies), scikit-learn's conventions:
- Brier score: binary -> mean (p_positive − y)², in [0, 1] (sklearn's `brier_score_loss`); multi-class ->
  mean over documents of Σ_c (p_c − 1[y = c])², in [0, 2] (the same function given every class). Lower is better.
- reliability curve: probabilities cut into equal-width bins of [0, 1] (a value on an edge goes to the lower bin,
  as sklearn's `calibration_curve(strategy="uniform")`); per non-empty bin the mean predicted probability and the
  observed frequency. Binary: the positive class's probability against how often the label is positive (exactly
  `calibration_curve`); multi-class: the top label's probability (the confidence) against how often it is right.
- expected calibration error (ECE, Guo et al. 2017): the top label's reliability curve, the documents-weighted
  mean of |observed − predicted| over the bins; 0 = calibrated, in [0, 1]. Top label for binary tasks too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from ..errors import ConfigError

N_BOOTSTRAP = 1000  # resamples for intervals and the paired bootstrap test
CI_LEVEL = 0.95
CALIBRATION_BINS = 10  # equal-width probability bins of the reliability curve and the ECE


# --- AUC -------------------------------------------------------------------------------------

def _weighted_binary_auc(pos: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC of `score` for the boolean target `pos`, for each row of weights `w` (R, n) -> (R,).

    AUC = sum_{i pos, j neg} w_i w_j ([s_i > s_j] + 0.5 [s_i == s_j]) / (W_pos W_neg);
    NaN where a row has no positive or no negative weight."""
    uniq, inv = np.unique(score, return_inverse=True)
    n_u = len(uniq)
    w_neg = w * (~pos)
    w_pos = w * pos
    # per resample, the negative weight at each distinct score value
    r = w.shape[0]
    flat = (np.arange(r)[:, None] * n_u + inv[None, :]).ravel()
    neg_at = np.bincount(flat, weights=w_neg.ravel(), minlength=r * n_u).reshape(r, n_u)
    below = np.cumsum(neg_at, axis=1) - neg_at  # negative weight strictly below each value
    credit = below + 0.5 * neg_at  # ties count one half
    num = (w_pos * credit[:, inv]).sum(axis=1)
    den = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def per_class_auc_weighted(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One-vs-rest AUC of every class, for each weight row: (R, n) -> (R, C), NaN if undefined."""
    y = np.asarray(y)
    return np.stack([_weighted_binary_auc(y == c, proba[:, c], w) for c in range(proba.shape[1])], axis=1)


def auc_weighted(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The task AUC (binary: class 1; multi-class: macro OvR) for each weight row; NaN if undefined."""
    if proba.shape[1] == 2:
        return _weighted_binary_auc(np.asarray(y) == 1, proba[:, 1], w)
    return per_class_auc_weighted(y, proba, w).mean(axis=1)  # NaN if any class is missing


def roc_auc(y, proba) -> float | None:
    """The task AUC of one set of predictions, or None when it is undefined (a class is missing)."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    v = float(auc_weighted(y, proba, np.ones((1, len(y))))[0])
    return None if np.isnan(v) else v


def per_class_auc(y, proba) -> list[float | None]:
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    v = per_class_auc_weighted(y, proba, np.ones((1, len(y))))[0]
    return [None if np.isnan(a) else float(a) for a in v]


# --- bootstrap ------------------------------------------------------------------------------

def stratified_bootstrap_counts(y, n_resamples: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """(R, n) draw counts: each resample draws, within every class, as many documents as it has."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    n = len(y)
    rows = np.arange(n_resamples)[:, None] * n
    flat = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        flat.append((rows + members[rng.integers(0, len(members), size=(n_resamples, len(members)))]).ravel())
    return np.bincount(np.concatenate(flat), minlength=n_resamples * n).reshape(n_resamples, n).astype(np.float64)


def bootstrap_auc_ci(y, proba, n_resamples: int = N_BOOTSTRAP, seed: int = 0, level: float = CI_LEVEL):
    """Percentile interval of the pooled AUC under stratified resampling of documents."""
    w = stratified_bootstrap_counts(y, n_resamples, seed)
    a = auc_weighted(np.asarray(y), np.asarray(proba, dtype=np.float64), w)
    a = a[~np.isnan(a)]
    lo, hi = np.quantile(a, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


# --- paired comparisons -------------------------------------------------------------------------

def corrected_resampled_ttest(a, b, n_train: float, n_test: float) -> dict:
    """Nadeau & Bengio (2003) corrected resampled t-test of paired per-fold scores a, b.

    t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)),  d = a - b over the J folds where both are
    defined, var with ddof=1, J-1 degrees of freedom. The n_test/n_train term corrects for the
    overlap of training sets between folds, which makes the plain paired t-test far too liberal.

    Repeated k-fold (r repetitions with different fold assignments): pass the r x k fold scores
    concatenated; this is then Bouckaert & Frank's (2004) corrected repeated k-fold t-test,
    t = mean(d) / sqrt((1/(k r) + n_test/n_train) var(d)) with k r - 1 degrees of freedom."""
    a = np.asarray([np.nan if v is None else v for v in a], dtype=np.float64)
    b = np.asarray([np.nan if v is None else v for v in b], dtype=np.float64)
    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    j = len(d)
    if j < 2:
        return {"mean_diff": float(d.mean()) if j else None, "t": None, "p": None, "n_folds": j}
    mean, var = float(d.mean()), float(d.var(ddof=1))
    if var == 0.0:  # identical differences in every fold: no spread to test against
        return {"mean_diff": mean, "t": None, "p": 1.0 if mean == 0.0 else 0.0, "n_folds": j}
    t = mean / np.sqrt((1.0 / j + n_test / n_train) * var)
    p = float(2 * stats.t.sf(abs(t), df=j - 1))
    return {"mean_diff": mean, "t": float(t), "p": p, "n_folds": j}


def _repetitions(proba) -> list[np.ndarray]:
    """(N, C) -> [it]; (R, N, C) or a list of (N, C) (repetitions of a cross-validation) -> the list."""
    if isinstance(proba, np.ndarray) and proba.ndim == 2:
        return [np.asarray(proba, dtype=np.float64)]
    return [np.asarray(p, dtype=np.float64) for p in proba]


def paired_bootstrap_test(y, proba_a, proba_b, n_resamples: int = N_BOOTSTRAP, seed: int = 0) -> dict:
    """Two-sided paired bootstrap of AUC(a) - AUC(b) on the same pooled out-of-fold documents.

    Both are scored on the same resamples; p = 2 * min(P(diff <= 0), P(diff >= 0)) with the +1
    correction, so that it is never exactly 0 with a finite number of resamples.

    proba_a and proba_b may each be a list of (N, C) arrays, one per repetition of the cross-validation
    (`--seeds`, the same documents): the statistic is then the mean over repetitions of AUC(a) - AUC(b),
    every repetition scored on the same resampled documents."""
    y = np.asarray(y)
    w = stratified_bootstrap_counts(y, n_resamples, seed)
    reps_a, reps_b = _repetitions(proba_a), _repetitions(proba_b)
    da = np.mean([auc_weighted(y, p, w) for p in reps_a], axis=0)
    db = np.mean([auc_weighted(y, p, w) for p in reps_b], axis=0)
    diff = (da - db)[~(np.isnan(da) | np.isnan(db))]
    r = len(diff)
    observed = [roc_auc(y, p) for p in reps_a], [roc_auc(y, p) for p in reps_b]
    obs_diff = None if None in observed[0] + observed[1] else float(np.mean(observed[0]) - np.mean(observed[1]))
    p = min(1.0, 2 * min((1 + (diff <= 0).sum()) / (1 + r), (1 + (diff >= 0).sum()) / (1 + r)))
    lo, hi = np.quantile(diff, [(1 - CI_LEVEL) / 2, 1 - (1 - CI_LEVEL) / 2])
    return {"diff": obs_diff, "diff_ci": [float(lo), float(hi)], "p": float(p)}


# --- calibration -----------------------------------------------------------------------------

def brier_score(y, proba) -> float:
    """Brier score (module docstring): binary -> mean (p_positive − y)²; multi-class -> mean Σ_c (p_c − 1[y = c])²."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    per_doc = ((proba - np.eye(proba.shape[1])[y]) ** 2).sum(axis=1)
    return float(per_doc.mean() / 2 if proba.shape[1] == 2 else per_doc.mean())  # binary: Σ over 2 classes = 2 (p − y)²


@dataclass
class ReliabilityCurve:
    """Per non-empty bin (in increasing order): mean predicted probability, observed frequency, documents."""
    predicted: np.ndarray
    observed: np.ndarray
    count: np.ndarray
    kind: str  # "positive class" or "top label"


def _binned(score: np.ndarray, hit: np.ndarray, bins: int, kind: str) -> ReliabilityCurve:
    if bins < 1:
        raise ConfigError(f"bins: must be a positive integer, got {bins}.", param="bins")
    ids = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], score)  # as sklearn's calibration_curve
    count = np.bincount(ids, minlength=bins)
    pred = np.bincount(ids, weights=score, minlength=bins)
    obs = np.bincount(ids, weights=hit.astype(np.float64), minlength=bins)
    keep = count > 0
    return ReliabilityCurve(pred[keep] / count[keep], obs[keep] / count[keep], count[keep], kind)


def reliability_curve(y, proba, bins: int = CALIBRATION_BINS, top_label: bool | None = None) -> ReliabilityCurve:
    """The reliability curve (module docstring): binary -> the positive class, multi-class -> the top label;
    `top_label=True` asks for the top label's curve of a binary task too."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    if top_label is None:
        top_label = proba.shape[1] != 2
    if top_label:
        pred = proba.argmax(axis=1)
        return _binned(proba[np.arange(len(y)), pred], pred == y, bins, "top label")
    return _binned(proba[:, 1], y == 1, bins, "positive class")


def expected_calibration_error(y, proba, bins: int = CALIBRATION_BINS) -> float:
    """ECE (module docstring): Σ_bins (n_b / N) |accuracy_b − confidence_b| over the top label's equal-width bins."""
    c = reliability_curve(y, proba, bins, top_label=True)
    return float((c.count * np.abs(c.observed - c.predicted)).sum() / c.count.sum())


# --- one configuration's summary ------------------------------------------------------------------

def summarize(y, proba, fold_of, n_classes: int, seed: int = 0, n_resamples: int = N_BOOTSTRAP) -> dict:
    """Every metric of one configuration, from its pooled out-of-fold probabilities.

    `fold_of` (n,) gives each document's test fold; fold AUCs are computed per fold."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    fold_of = np.asarray(fold_of)
    k = int(fold_of.max()) + 1
    fold_aucs = [roc_auc(y[fold_of == i], proba[fold_of == i]) for i in range(k)]
    defined = np.array([a for a in fold_aucs if a is not None])
    pred = proba.argmax(axis=1)
    labels = np.arange(n_classes)
    return {
        "auc_pooled": roc_auc(y, proba),
        "auc_pooled_ci": bootstrap_auc_ci(y, proba, n_resamples, seed),
        "auc_mean": float(defined.mean()) if len(defined) else None,
        "auc_std": float(defined.std(ddof=1)) if len(defined) > 1 else None,
        "auc_folds": fold_aucs,
        "n_folds_defined": int(len(defined)),
        "auc_per_class": per_class_auc(y, proba),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "brier": brier_score(y, proba),
        "ece": expected_calibration_error(y, proba),
    }


# --- repetitions (`--seeds`) ------------------------------------------------------------------------

def mean_sd(values) -> tuple[float | None, float | None]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    return (float(v.mean()) if len(v) else None), (float(v.std(ddof=1)) if len(v) > 1 else None)


def over_seeds(summaries: list[dict]) -> dict:
    """Mean ± sd (ddof=1) over repetitions of the pooled AUC and of the fold-mean AUC.

    `summaries`: one `summarize` result per repetition (each its own fold assignment and initialisation).
    A repetition whose figure is undefined (None) is left out of that figure's mean and sd."""
    pooled = [s["auc_pooled"] for s in summaries]
    means = [s["auc_mean"] for s in summaries]
    (pm, psd), (mm, msd) = mean_sd(pooled), mean_sd(means)
    return {"n_seeds": len(summaries), "auc_pooled": pooled, "auc_pooled_mean": pm, "auc_pooled_sd": psd,
            "auc_mean": means, "auc_mean_mean": mm, "auc_mean_sd": msd}
