"""25-fold cross-validation of `hilbert` on synthetic embeddings at the paper's sizes: batched vs sequential.

500 documents × 30 segments, audio 1024-d (HuBERT-large) and text 312-d (TinyBERT), 4 classes.
  batched     all 25 folds trained together (hilbert_cli.learn.batched, what `hilbert evaluate` runs)
  sequential  train.fit on one fold after another (timed on --seq-folds folds, scaled to 25)
  sklearn     LogisticRegression on mean-pooled, standardised features, same folds (the usual baseline)
Both neural runs train exactly --epochs epochs (early stopping off), so the comparison is per unit of work.
Threads as `hilbert evaluate` and `hilbert train` use them: the batched run gets torch's default (all
cores, one cell), train.fit runs on one thread (train.FIT_THREADS; --seq-threads 2 to give it both).

    python benchmarks/bench_evaluate.py                 # default: 10 epochs, sequential timed on 3 folds
    python benchmarks/bench_evaluate.py --seq-folds 5 --seq-threads 2   # against two-thread fits
    python benchmarks/bench_evaluate.py --epochs 100 --seq-folds 25   # the full thing (long)
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hilbert_cli.learn.batched import cross_val_predict_batched
from hilbert_cli.learn.config import load_config
from hilbert_cli.evaluation.folds import make_folds
from hilbert_cli.evaluation.metrics import roc_auc
from hilbert_cli.learn.train import FIT_THREADS, fit, predict_proba

N_DOCS, N_SEGMENTS, D_AUDIO, D_TEXT, N_CLASSES, K = 500, 30, 1024, 312, 4, 25


def synthetic(seed: int = 0):
    """Documents whose class shifts a few audio and text dimensions (a weak, learnable signal)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(N_CLASSES, size=N_DOCS, p=[0.4, 0.3, 0.2, 0.1])
    A, T = [], []
    for c in y:
        a = rng.normal(size=(N_SEGMENTS, D_AUDIO)).astype(np.float32)
        t = rng.normal(size=(N_SEGMENTS, D_TEXT)).astype(np.float32)
        a[:, c * 8:(c + 1) * 8] += 0.3
        t[:, c * 8:(c + 1) * 8] += 0.3
        A.append(a)
        T.append(t)
    return A, T, y


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seq-folds", type=int, default=3, help="folds to time sequentially (scaled to 25)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--seq-threads", type=int, default=FIT_THREADS,
                    help=f"torch threads of each sequential train.fit (default: train.FIT_THREADS = {FIT_THREADS})")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    A, T, y = synthetic()
    folds = make_folds(y, k=K, seed=0)
    cfg = load_config(None, {"configuration": "hilbert", "train.epochs": args.epochs, "train.patience": args.epochs + 1})
    print(f"{N_DOCS} documents x {N_SEGMENTS} segments, audio {D_AUDIO}-d, text {D_TEXT}-d, {N_CLASSES} classes, "
          f"{K} folds, {args.epochs} epochs, torch threads {torch.get_num_threads()}, {os.cpu_count()} cores")

    # both ways use torch.optim.AdamW, whose first construction in a process imports torch._dynamo
    # (about 1.4 s here); pay it before either clock starts so neither carries it
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])

    t0 = time.perf_counter()
    res = cross_val_predict_batched(cfg, A, T, y, N_CLASSES, folds)
    t_batched = time.perf_counter() - t0
    print(f"batched    : {t_batched:8.1f} s for {K} folds  (pooled AUC {roc_auc(y, res.proba):.3f})")

    n_seq = min(args.seq_folds, K)
    t0 = time.perf_counter()
    for i in range(n_seq):
        tr, te = folds.split(i)
        model = fit(cfg, [A[j] for j in tr], [T[j] for j in tr], y[tr], N_CLASSES, threads=args.seq_threads).model
        predict_proba(model, [A[j] for j in te], [T[j] for j in te])
    t_seq = (time.perf_counter() - t0) * K / n_seq
    note = "measured" if n_seq == K else f"estimated: {n_seq} folds timed x {K}/{n_seq}"
    note += f", {args.seq_threads} thread{'s' if args.seq_threads > 1 else ''} per fit"
    print(f"sequential : {t_seq:8.1f} s for {K} folds  ({note})")
    print(f"speed-up   : {t_seq / t_batched:8.2f} x")

    t0 = time.perf_counter()
    X = np.stack([np.concatenate([a.mean(0), t.mean(0)]) for a, t in zip(A, T)])
    proba = np.zeros((N_DOCS, N_CLASSES))
    for tr, te in folds.splits():
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        clf.fit(X[tr], y[tr])
        proba[te] = clf.predict_proba(X[te])
    t_lr = time.perf_counter() - t0
    print(f"sklearn LR : {t_lr:8.1f} s for {K} folds  (mean-pooled features, pooled AUC {roc_auc(y, proba):.3f})")


if __name__ == "__main__":
    main()
