"""Cross-validation folds: stratified by label, grouped by subject, fixed by a seed.

The same `Folds` object is used for every configuration and backbone of an evaluation, so that
their per-fold scores are paired (the t-test in metrics.py relies on it). `Folds.hash` names the
assignment, so cached grid cells are only reused for exactly the same folds.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ..errors import HilbertError

DEFAULT_FOLDS = 25  # the paper's k
MIN_CLASS_DOCS = 2  # a class with fewer documents can be neither trained on nor tested


@dataclass
class Folds:
    doc_ids: list[str]
    test_fold: np.ndarray  # (n,) int: the fold in which each document is tested
    k: int  # number of folds actually used (may be below the k asked for; see warnings)
    seed: int
    grouped: bool  # True when subjects were used as groups
    warnings: list[str] = field(default_factory=list)

    def split(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(train indices, test indices) of fold i, both sorted."""
        test = np.flatnonzero(self.test_fold == i)
        train = np.flatnonzero(self.test_fold != i)
        return train, test

    def splits(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.split(i) for i in range(self.k)]

    @property
    def hash(self) -> str:
        payload = json.dumps({"doc_ids": list(self.doc_ids), "fold": self.test_fold.tolist()})
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def subject_groups(doc_ids: list[str], subjects: list[str | None] | None) -> np.ndarray | None:
    """Group ids for grouped splitting, or None when no document names a subject.

    A document without a subject is its own group (it cannot leak into another fold)."""
    if subjects is None or all(s is None or str(s).strip() == "" for s in subjects):
        return None
    names = [f"subject:{s}" if s is not None and str(s).strip() != "" else f"doc:{d}" for d, s in zip(doc_ids, subjects)]
    _, groups = np.unique(np.asarray(names), return_inverse=True)
    return groups


def check_class_sizes(y: np.ndarray, label_names: list[str] | None = None, task: str = "") -> np.ndarray:
    """Class counts; raises HilbertError when a class has fewer than MIN_CLASS_DOCS documents."""
    y = np.asarray(y)
    n_classes = len(label_names) if label_names is not None else int(y.max()) + 1
    counts = np.bincount(y, minlength=n_classes)
    names = label_names or [str(c) for c in range(n_classes)]
    small = [f"{names[c]!r} ({counts[c]})" for c in range(n_classes) if counts[c] < MIN_CLASS_DOCS]
    if small:
        where = f"task {task!r}" if task else "the labels"
        raise HilbertError(
            f"{where}: class {', '.join(small)} has fewer than {MIN_CLASS_DOCS} labelled documents, so it can be "
            f"neither trained on nor tested; label more documents or merge/remove that class in labels.csv."
        )
    return counts


def make_folds(
    y, k: int = DEFAULT_FOLDS, seed: int = 0, groups=None, doc_ids: list[str] | None = None,
    label_names: list[str] | None = None, task: str = "",
) -> Folds:
    """Assign every document to one test fold (StratifiedGroupKFold with groups, else StratifiedKFold)."""
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    doc_ids = list(doc_ids) if doc_ids is not None else [str(i) for i in range(n)]
    if k < 2:
        raise HilbertError(f"--folds: need at least 2 folds for cross-validation, got {k}.")
    counts = check_class_sizes(y, label_names, task)
    names = label_names or [str(c) for c in range(len(counts))]
    notes: list[str] = []
    n_units = n if groups is None else len(np.unique(groups))
    unit = "documents" if groups is None else "subjects"
    k_used = k
    if k_used > n_units:
        k_used = n_units
        notes.append(f"--folds {k} is more than the {n_units} {unit}; using {k_used} folds (leave-one-out).")
    if k_used > counts.max():  # sklearn cannot split when every class is smaller than k
        notes.append(f"--folds {k_used} is more than the largest class ({counts.max()} documents); using {counts.max()} folds.")
        k_used = int(counts.max())
    rare = [f"{names[c]!r} ({counts[c]})" for c in range(len(counts)) if counts[c] < k_used]
    if rare:
        notes.append(
            f"class {', '.join(rare)} has fewer documents than the {k_used} folds: some test folds lack it, "
            f"so their own AUC is undefined and left out of the fold mean (the pooled AUC uses every document)."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn's "least populated class" warning: said above
        if groups is None:
            splitter = StratifiedKFold(n_splits=k_used, shuffle=True, random_state=seed)
            parts = splitter.split(np.zeros(n), y)
        else:
            splitter = StratifiedGroupKFold(n_splits=k_used, shuffle=True, random_state=seed)
            parts = splitter.split(np.zeros(n), y, groups)
        test_fold = np.full(n, -1, dtype=np.int64)
        for i, (_, test) in enumerate(parts):
            test_fold[test] = i
    if (test_fold < 0).any():  # cannot happen with sklearn's splitters; guard the invariant all the same
        raise HilbertError("internal: a document was assigned to no fold; please report this as a bug.")
    return Folds(doc_ids, test_fold, k_used, seed, groups is not None, notes)


def inner_split(y, groups=None, seed: int = 0, val_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, validation indices) of a training fold, for early stopping.

    Stratified, grouped like the outer folds; uses only the training fold, never the test fold.
    With too few documents for a validation part (< 2 groups), all are used for fitting and
    validation is the training set itself (early stopping then only limits epochs)."""
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    n_units = n if groups is None else len(np.unique(groups))
    n_splits = min(max(2, round(1 / val_fraction)), n_units)
    if n_splits < 2:
        idx = np.arange(n)
        return idx, idx
    # the stratified splitters need some class with >= n_splits members; fall back to fewer splits
    n_splits = max(2, min(n_splits, int(np.bincount(y).max())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if groups is None:
            fit, val = next(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(n), y))
        else:
            fit, val = next(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(n), y, groups))
    return np.sort(fit), np.sort(val)
