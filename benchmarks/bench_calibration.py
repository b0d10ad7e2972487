"""Calibration before and after temperature scaling, on the learning task suite (hilbert_cli/evaluation/tasks.py).

For every task and configuration: 5-fold cross-validation with the library's `cross_validate` (folds stratified,
grouped by subject, seeded), in two runs:
  default      the release defaults, trained on every document of the training fold
  held out     train.calibrate with the default protocol: train.calibration_fraction (20 %) of each training fold is
               held out of training, the probabilities as the model gives them
  held out + T the same models, each fold's probabilities divided by the temperature fitted on its held-out documents.
               The temperature is applied after training, so "held out" is recovered exactly from "held out + T":
               softmax(T_f · log p) undoes the scaling of fold f.
Printed per row: the pooled out-of-fold macro AUC, the Brier score and the expected calibration error (10 bins,
top label) of each setting, and the median per-fold temperature.

    python benchmarks/bench_calibration.py                                   # mean-shift and needle, transfer
    python benchmarks/bench_calibration.py --tasks mean-shift --configs transfer,hilbert --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's hilbert_cli first

import numpy as np
import torch

from hilbert_cli.evaluation.crossval import cross_validate
from hilbert_cli.evaluation.metrics import (
    brier_score,
    expected_calibration_error,
    roc_auc,
)
from hilbert_cli.evaluation.tasks import make_task


def uncalibrated(proba: np.ndarray, folds: np.ndarray, temperatures: list[float]) -> np.ndarray:
    """The probabilities before fold f's temperature T_f: softmax(T_f · log p)."""
    out = np.empty_like(proba)
    for f, t in enumerate(temperatures):
        z = t * np.log(np.clip(proba[folds == f], 1e-300, None))
        z -= z.max(axis=1, keepdims=True)
        out[folds == f] = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return out


def scores(y, p) -> dict:
    return {"auc": roc_auc(y, p), "brier": brier_score(y, p), "ece": expected_calibration_error(y, p)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="mean-shift,needle")
    ap.add_argument("--configs", default="transfer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.tasks.split(","):
        task = make_task(name, seed=args.seed)
        for config in args.configs.split(","):
            t0 = time.perf_counter()
            base = cross_validate(task.A, task.T, task.y, config, k=args.folds, groups=task.subjects, seed=args.seed,
                                  device="cpu")
            cal = cross_validate(task.A, task.T, task.y, config, k=args.folds, groups=task.subjects, seed=args.seed,
                                 device="cpu", config={"train.calibrate": True})
            temps = cal.temperature[config]
            row = {"task": name, "configuration": config, "temperatures": temps,
                   "default": scores(task.y, base.oof_proba[config]),
                   "held out": scores(task.y, uncalibrated(cal.oof_proba[config], cal.folds, temps)),
                   "held out+T": scores(task.y, cal.oof_proba[config]), "seconds": time.perf_counter() - t0}
            rows.append(row)
            cells = " | ".join(f"{row[s]['auc']:.3f} / {row[s]['brier']:.3f} / {row[s]['ece']:.3f}"
                               for s in ("default", "held out", "held out+T"))
            print(f"| {name} | {config} | {cells} | {np.median(temps):.2f} ({min(temps):.2f}–{max(temps):.2f}) | "
                  f"{row['seconds']:.0f} s |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
