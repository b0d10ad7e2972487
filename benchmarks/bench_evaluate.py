"""25-fold cross-validation of `hilbert` on synthetic embeddings at the paper's sizes: batched vs sequential.

500 documents × 30 segments, audio 1024-d (HuBERT-large) and text 312-d (TinyBERT), 4 classes.
  batched     all 25 folds trained together: evaluation.crossval.cross_val_predict, the one trainer
              (learn.trainer.train_folds) with F = 25, what `hilbert evaluate` runs
  sequential  train.fit on one fold after another, then train.predict_proba on its test documents: the
              same trainer with F = 1, as `hilbert train` runs it (timed on --seq-folds folds, scaled to 25)
  sklearn     LogisticRegression on mean-pooled, standardised features, same folds (the usual baseline)
Both neural runs train exactly --epochs epochs (early stopping off), so the comparison is per unit of work.
Every fold is seeded as `hilbert train` seeds it and draws its own dropout masks, so in exact arithmetic a
sequential fold predicts what the same fold predicts in the batched run. The largest difference is printed:
in float64 (--dtype float64) it stays at rounding level (about 1e-8); in float32 the two runs' rounding
differs (25-wide vs 1-wide products) and AdamW amplifies it over the epochs, so after 10 epochs a few test
documents can differ by a lot (tests/test_trainer.py checks the equality in float64).
Threads: the batched run gets torch's default (all cores, one cell, or --threads), each sequential fit
--seq-threads (default 1; on a busy 2-core machine two threads thrash). On a GPU (--device cuda) threads
only matter for the little work left on the CPU.

    python benchmarks/bench_evaluate.py                 # default: 10 epochs, sequential timed on 3 folds
    python benchmarks/bench_evaluate.py --seq-folds 5 --seq-threads 2   # against two-thread fits
    python benchmarks/bench_evaluate.py --device cuda --seq-folds 5      # on a CUDA GPU
    python benchmarks/bench_evaluate.py --epochs 100 --seq-folds 25   # the full thing (long)
    python benchmarks/bench_evaluate.py --batched-folds 5 --seq-folds 0 --no-sklearn  # 5 of the 25 folds, x 25/5
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hilbert_cli.device import resolve_device  # noqa: E402
from hilbert_cli.evaluation.crossval import cross_val_predict  # noqa: E402
from hilbert_cli.evaluation.folds import Folds, make_folds  # noqa: E402
from hilbert_cli.evaluation.metrics import roc_auc  # noqa: E402
from hilbert_cli.learn.config import load_config  # noqa: E402
from hilbert_cli.learn.train import fit, predict_proba  # noqa: E402

N_DOCS, N_SEGMENTS, D_AUDIO, D_TEXT, N_CLASSES, K = 500, 30, 1024, 312, 4, 25


def synthetic(n_docs: int = N_DOCS, n_segments: int = N_SEGMENTS, seed: int = 0):
    """Documents whose class shifts a few audio and text dimensions (a weak, learnable signal)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(N_CLASSES, size=n_docs, p=[0.4, 0.3, 0.2, 0.1])
    A, T = [], []
    for c in y:
        a = rng.normal(size=(n_segments, D_AUDIO)).astype(np.float32)
        t = rng.normal(size=(n_segments, D_TEXT)).astype(np.float32)
        a[:, c * 8:(c + 1) * 8] += 0.3
        t[:, c * 8:(c + 1) * 8] += 0.3
        A.append(a)
        T.append(t)
    return A, T, y


def first_folds(folds: Folds, m: int) -> Folds:
    """The first m folds of `folds`, each with its full training part (documents of the other folds stay in
    every training set): training them is exactly m of the k folds' work."""
    if m >= folds.k:
        return folds
    return Folds(folds.doc_ids, folds.test_fold, m, folds.seed, folds.grouped, list(folds.warnings))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(cfg, device: torch.device) -> None:
    """Pay one-time costs before any clock starts: torch.optim's first AdamW imports torch._dynamo (about 1.4 s
    on the CPU here); on a GPU also the CUDA context, cuBLAS handles and first kernel loads."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    A, T, y = synthetic(16, 4, seed=1)
    y = np.arange(16) % N_CLASSES
    small = load_config(None, {"configuration": cfg.configuration, "train.epochs": 1, "train.patience": 2})
    cross_val_predict(small, A, T, y, N_CLASSES, make_folds(y, k=2, seed=0), device=device)
    fit(small, A, T, y, N_CLASSES, device=device, threads=1)
    sync(device)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seq-folds", type=int, default=3, help="folds to time sequentially (scaled to 25; 0: skip)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the batched run (default: torch's)")
    ap.add_argument("--seq-threads", type=int, default=1, help="torch threads of each sequential train.fit (default 1)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto, mps")
    ap.add_argument("--batched-folds", type=int, default=K,
                    help=f"train only the first M of the {K} folds together and scale the time by {K}/M (default {K})")
    ap.add_argument("--no-sklearn", action="store_true", help="skip the logistic-regression baseline")
    ap.add_argument("--docs", type=int, default=N_DOCS, help=f"documents (default {N_DOCS}; smaller for a dry run)")
    ap.add_argument("--segments", type=int, default=N_SEGMENTS, help=f"segments per document (default {N_SEGMENTS})")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="training dtype (default float32)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    A, T, y = synthetic(args.docs, args.segments)
    folds = make_folds(y, k=K, seed=0)
    k = folds.k
    cfg = load_config(None, {"configuration": "hilbert", "train.epochs": args.epochs, "train.patience": args.epochs + 1})
    load = os.getloadavg()[0]
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"{args.docs} documents x {args.segments} segments, audio {D_AUDIO}-d, text {D_TEXT}-d, {N_CLASSES} classes, "
          f"{k} folds, {args.epochs} epochs, {args.dtype}; device {device}{gpu}; torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} cores, load average {load:.2f} before the run")
    result = {"device": str(device), "gpu": gpu.strip(" ()") or None, "docs": args.docs, "segments": args.segments,
              "folds": k, "epochs": args.epochs, "dtype": args.dtype, "threads": torch.get_num_threads(), "cores": os.cpu_count(),
              "load_before": load, "torch": torch.__version__}

    warm_up(cfg, device)

    m = max(1, min(args.batched_folds, k))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    res = cross_val_predict(cfg, A, T, y, N_CLASSES, first_folds(folds, m), device=device, dtype=dtype)
    sync(device)
    t_batched = (time.perf_counter() - t0) * k / m
    cpu_batched = (time.process_time() - c0) * k / m
    auc = roc_auc(y, res.proba) if m == k else float("nan")
    note = f"pooled AUC {auc:.3f}" if m == k else f"estimated: {m} folds trained together x {k}/{m}"
    print(f"batched    : {t_batched:8.1f} s for {k} folds  ({note}; {cpu_batched:.1f} CPU-s)")
    result.update(batched_s=t_batched, batched_cpu_s=cpu_batched, batched_folds_timed=m, batched_auc=auc)
    if device.type == "cuda":
        result["gpu_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        print(f"GPU memory : {result['gpu_peak_mib']:8.0f} MiB peak (batched run)")

    n_seq = min(args.seq_folds, k)
    if n_seq > 0:
        diffs = []
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n_seq):
            tr, te = folds.split(i)
            model = fit(cfg, [A[j] for j in tr], [T[j] for j in tr], y[tr], N_CLASSES, device=device,
                        threads=args.seq_threads, dtype=dtype).model
            p = predict_proba(model, [A[j] for j in te], [T[j] for j in te])
            if i < m:
                diffs.append(float(np.abs(p - res.proba[te]).max()))
        sync(device)
        t_seq = (time.perf_counter() - t0) * k / n_seq
        cpu_seq = (time.process_time() - c0) * k / n_seq
        note = "measured" if n_seq == k else f"estimated: {n_seq} folds timed x {k}/{n_seq}"
        note += f", {args.seq_threads} thread{'s' if args.seq_threads > 1 else ''} per fit"
        print(f"sequential : {t_seq:8.1f} s for {k} folds  ({note}; {cpu_seq:.1f} CPU-s)")
        print(f"speed-up   : {t_seq / t_batched:8.2f} x wall  ({cpu_seq / cpu_batched:.2f} x in CPU-seconds)")
        if diffs:
            print(f"check      : largest |batched - sequential| probability on the timed folds {max(diffs):.1e} "
                  f"({args.dtype}; rounding-level only in float64, see above)")
        result.update(sequential_s=t_seq, sequential_cpu_s=cpu_seq, sequential_folds_timed=n_seq, seq_threads=args.seq_threads,
                      speedup=t_seq / t_batched, max_proba_diff=max(diffs) if diffs else None)

    if not args.no_sklearn:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        t0 = time.perf_counter()
        X = np.stack([np.concatenate([a.mean(0), t.mean(0)]) for a, t in zip(A, T)])
        proba = np.zeros((len(y), N_CLASSES))
        for tr, te in folds.splits():
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            clf.fit(X[tr], y[tr])
            proba[te] = clf.predict_proba(X[te])
        t_lr = time.perf_counter() - t0
        print(f"sklearn LR : {t_lr:8.1f} s for {k} folds  (mean-pooled features, pooled AUC {roc_auc(y, proba):.3f})")
        result.update(sklearn_s=t_lr, sklearn_auc=float(roc_auc(y, proba)))

    result["load_after"] = os.getloadavg()[0]
    print(f"load average {result['load_after']:.2f} after the run")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
