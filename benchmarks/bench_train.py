"""Training speed: seconds per training run and documents per second on this machine.

Synthetic segment embeddings at the paper's sizes (default 500 documents x 30 segments, audio 1024-d
like HuBERT/wav2vec2-large, text 768-d like RoBERTa), one `train.fit` per configuration with the
default hyperparameters (early stopping on), then inference over all documents.

    python benchmarks/bench_train.py                       # hilbert and transfer, 1 and 2 threads
    python benchmarks/bench_train.py --configs hilbert --threads 2 --epochs 10
"""
from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from hilbert_cli.learn.config import load_config  # noqa: E402
from hilbert_cli.learn.data import synthetic_embeddings  # noqa: E402
from hilbert_cli.learn.train import fit, predict_proba  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--segments", type=int, default=30)
    ap.add_argument("--d-audio", type=int, default=1024)
    ap.add_argument("--d-text", type=int, default=768)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--configs", default="hilbert,transfer")
    ap.add_argument("--threads", default="1,2", help="torch intra-op thread counts to try")
    ap.add_argument("--epochs", type=int, default=None, help="override the maximum epochs (default: the config's)")
    args = ap.parse_args()

    A, T, y = synthetic_embeddings(args.docs, args.classes, segments=(args.segments, args.segments),
                                   d_audio=args.d_audio, d_text=args.d_text, signal=0.3, seed=0)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"{args.docs} documents x {args.segments} segments, d_audio {args.d_audio}, d_text {args.d_text}, "
          f"{args.classes} classes")
    print(f"{'configuration':16s} {'threads':>7s} {'epochs':>6s} {'run s':>8s} {'s/epoch':>8s} "
          f"{'train docs/s':>12s} {'predict docs/s':>14s}")
    for name in args.configs.split(","):
        overrides = {"configuration": name}
        if args.epochs:
            overrides["train.epochs"] = args.epochs
        cfg = load_config(None, overrides)
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            res = fit(cfg, A, T, y, args.classes, threads=threads)
            run = time.perf_counter() - t0
            epochs = len(res.history)
            train_docs = len(res.fit_index) * epochs
            t1 = time.perf_counter()
            predict_proba(res.model, A, T)
            pred = time.perf_counter() - t1
            print(f"{name:16s} {threads:7d} {epochs:6d} {run:8.1f} {run / epochs:8.2f} {train_docs / run:12.0f} "
                  f"{args.docs / pred:14.0f}", flush=True)


if __name__ == "__main__":
    main()
