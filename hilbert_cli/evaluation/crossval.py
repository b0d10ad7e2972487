"""Cross-validation: every fold of a configuration trained together (learn/trainer.py, F = k).

`cross_val_predict` gives the out-of-fold probabilities of one configuration on given folds (what a
cell of `hilbert evaluate` runs); `cross_validate` is the library entry point over per-document arrays.
Fold f's inner validation split, batch order, initialisation and dropout come from its own seed
(trainer.fold_seeds), so its predictions do not depend on the other folds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..device import resolve_device
from ..errors import ConfigError, DataError
from ..learn.config import HilbertConfig, PAPER_CONFIGURATIONS
from ..learn.data import encode_labels, label_order
from ..learn.trainer import FoldPlan, fold_seeds, inner_plan, torch_threads, train_folds
from .folds import Folds, make_folds
from .metrics import roc_auc


@dataclass
class CVResult:
    proba: np.ndarray  # (N, C) out-of-fold class probabilities
    best_epoch: list[int]  # per fold: the epoch whose weights were kept (1-based)
    epochs_run: list[int]  # per fold
    history: list[list[dict]] = field(default_factory=list)  # per fold, per epoch
    val_auc: list[float | None] = field(default_factory=list)  # per fold, at the kept epoch (with val_auc=True)
    temperature: list[float] = field(default_factory=list)  # per fold, with train.calibrate: the T its probabilities were divided by


def plan_folds(folds: Folds, y: np.ndarray, groups, config: HilbertConfig, seeds: Sequence[int]) -> list[FoldPlan]:
    """Each outer fold's fit / validation / test (/ calibration) indices: trainer.inner_plan of its training part,
    seeded with the fold's seed."""
    plans = []
    for (train_idx, test_idx), seed in zip(folds.splits(), seeds):
        g = None if groups is None else np.asarray(groups)[train_idx]
        p = inner_plan(np.asarray(y)[train_idx], g, config, seed)
        plans.append(FoldPlan(train_idx[p.fit], train_idx[p.val], test_idx, train_idx[p.cal]))
    return plans


def cross_val_predict(config: HilbertConfig, A_list, T_list, y, n_classes: int, folds: Folds, groups=None, *,
                      device=None, threads: Optional[int] = None, dtype: torch.dtype = torch.float32,
                      progress: Optional[Callable[[int, int], None]] = None, val_auc: bool = False) -> CVResult:
    """Out-of-fold probabilities of `config` on every document, all folds trained together; with
    train.calibrate each fold's probabilities are temperature-scaled with the T fitted on its own held-out documents.
    With `val_auc`, also each fold's AUC on its inner validation split (part of its training documents;
    train.val_fraction > 0 for it to be one) at the epoch whose weights were kept: None where undefined
    (one class in the split)."""
    y_np = np.asarray(y, dtype=np.int64)
    seeds = fold_seeds(config.train.seed, folds.k)
    plans = plan_folds(folds, y_np, groups, config, seeds)
    on_epoch = None if progress is None else (lambda e, total, records: progress(e, total))
    with torch_threads(threads):
        r = train_folds(config, A_list, T_list, y_np, n_classes, plans, seeds, device=resolve_device(device),
                        dtype=dtype, val_auc=val_auc, progress=on_epoch)
    proba = np.zeros((len(y_np), n_classes))
    for p, logits, t in zip(plans, r.test_logits, r.temperatures):
        proba[p.test] = torch.softmax(logits.double() / (1.0 if t is None else t.temperature), -1).numpy()
    temperature = [t.temperature for t in r.temperatures if t is not None]
    kept = []
    if val_auc:
        for history, best in zip(r.history, r.best_epoch):
            v = float(history[best - 1]["val_auc"]) if best >= 1 else math.nan
            kept.append(None if math.isnan(v) else v)  # NaN: the split holds one class only
    return CVResult(proba, r.best_epoch, r.epochs_run, r.history, kept, temperature)


@dataclass
class CrossValidation:
    """What `cross_validate` returns: the classes, each document's test fold, and per configuration the
    out-of-fold probabilities and their pooled AUC (binary: the second class; else macro one-vs-rest)."""
    classes_: np.ndarray
    folds: np.ndarray  # (N,) the fold in which each document was tested
    oof_proba: dict[str, np.ndarray]  # configuration -> (N, C), columns in classes_ order
    auc: dict[str, float]  # configuration -> pooled out-of-fold AUC
    best_epoch: dict[str, list[int]] = field(default_factory=dict)
    temperature: dict[str, list[float]] = field(default_factory=dict)  # configuration -> per-fold T (train.calibrate)


def cross_validate(audio, text, y, configurations: Sequence[str] = PAPER_CONFIGURATIONS, k: int = 5, groups=None,
                   seed: int = 0, device="auto", config=None, threads: Optional[int] = None) -> CrossValidation:
    """k-fold cross-validation (stratified by label, grouped by `groups` when given) of each configuration
    on the same folds, with the batched trainer `hilbert evaluate` runs.

    audio, text: lists of per-document arrays (S_i, d_audio), (S_i, d_text); y: labels (strings or numbers);
    config: a HilbertConfig or a dict of dotted overrides ({"train.epochs": 40}) applied to every configuration."""
    from ..learn.classifier import check_documents, resolve_config

    if isinstance(configurations, str):
        configurations = [configurations]
    if not configurations:
        raise ConfigError("configurations: give at least one configuration name.", param="configurations")
    A, T = check_documents(audio, text)
    if len(y) != len(A):
        raise DataError(f"y: got {len(y)} labels for {len(A)} documents; give one label per document.", param="y")
    classes = label_order(list(y))
    y_idx = encode_labels(list(y), classes)
    grp = None if groups is None else np.unique(np.asarray(groups).astype(str), return_inverse=True)[1]
    ids = [str(i) for i in range(len(y_idx))]
    folds = make_folds(y_idx, k, seed, grp, ids, classes, "y")
    dev = resolve_device(device)
    oof, auc, best, temps = {}, {}, {}, {}
    for name in configurations:
        cfg = resolve_config(name, config, seed)
        r = cross_val_predict(cfg, A, T, y_idx, len(classes), folds, grp, device=dev, threads=threads)
        oof[name], auc[name], best[name] = r.proba, float(roc_auc(y_idx, r.proba)), r.best_epoch
        if r.temperature:
            temps[name] = r.temperature
    originals = {str(v): v for v in y}
    return CrossValidation(np.asarray([originals[c] for c in classes]), folds.test_fold.copy(), oof, auc, best, temps)
