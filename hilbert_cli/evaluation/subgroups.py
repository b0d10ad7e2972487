"""AUC per subgroup (`hilbert evaluate --group-by COLUMN`): a bias audit of out-of-fold predictions.

The subgroups are the values of one `labels.csv` column that is not a task of the run (sex, site,
age band, ...). Each subgroup's AUC is the task AUC (metrics.roc_auc: binary — the second class,
multi-class — macro one-vs-rest) of the subgroup's own out-of-fold probabilities, exactly what
scoring that subgroup alone gives. Its 95% interval is a percentile bootstrap over the subgroup's
documents, stratified by class, with the run's seed (metrics.bootstrap_auc_ci: the same procedure
as the pooled AUC's interval, and it works for multi-class tasks, which DeLong's does not). A
subgroup that lacks a class has no AUC ("undefined"); a document with an empty cell in the column
is in no subgroup. The largest gap is the highest minus the lowest defined subgroup AUC.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import HilbertError
from ..learn.data import label_order
from .metrics import N_BOOTSTRAP, bootstrap_auc_ci, roc_auc


def check_group_column(column: str, columns: Sequence[str], tasks: Sequence[str]) -> None:
    """Raise unless `column` is a label column of labels.csv (`columns`) that is not one of `tasks`."""
    if column not in columns:
        raise HilbertError(f"--group-by: labels.csv has no column {column!r}; name one of its label columns: "
                           f"{', '.join(columns) or '(none)'}.", param="--group-by")
    if column in tasks:
        raise HilbertError(f"--group-by {column}: this column is also evaluated as a --task, and each of its subgroups "
                           "would hold a single class; leave it out of --task (with --task all it is left out for you).",
                           param="--group-by")


def subgroup_aucs(y, proba, groups: Sequence[str | None], label_names: Sequence[str], *, seed: int = 0,
                  n_resamples: int = N_BOOTSTRAP) -> dict:
    """Per subgroup: n, documents per class, AUC and its 95% bootstrap interval; and the largest gap.

    y (N,) class indices; proba (N, C) out-of-fold probabilities; groups (N,): each document's subgroup, or
    None / "" for none. Returns {"n_missing", "groups": {name: {"n", "class_counts", "auc", "auc_ci"}},
    "largest_gap": {"gap", "high", "low"} or None when fewer than two subgroups have an AUC}; subgroups in
    label order (numerically when every value is a number)."""
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    names = np.asarray(["" if g is None else str(g).strip() for g in groups], dtype=object)
    if len(names) != len(y):
        raise HilbertError(f"groups: got {len(names)} subgroup values for {len(y)} documents; give one per document.",
                           param="groups")
    out: dict = {"n_missing": int((names == "").sum()), "groups": {}}
    for g in label_order(n for n in names if n != ""):
        idx = np.flatnonzero(names == g)
        counts = np.bincount(y[idx], minlength=len(label_names))
        auc = roc_auc(y[idx], proba[idx])
        ci = None if auc is None else bootstrap_auc_ci(y[idx], proba[idx], n_resamples, seed)
        out["groups"][g] = {"n": len(idx), "class_counts": {n: int(c) for n, c in zip(label_names, counts)},
                            "auc": auc, "auc_ci": ci}
    out["largest_gap"] = largest_gap({g: d["auc"] for g, d in out["groups"].items()})
    return out


def largest_gap(aucs: dict) -> dict | None:
    """The highest minus the lowest of the defined AUCs ({subgroup: AUC or None}), with both subgroups' names."""
    defined = {g: a for g, a in aucs.items() if a is not None}
    if len(defined) < 2:
        return None
    high = max(defined, key=defined.get)
    low = min(defined, key=defined.get)
    return {"gap": float(defined[high] - defined[low]), "high": high, "low": low}
