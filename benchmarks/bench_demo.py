"""Benchmark of `hilbert demo-data` on this machine (prints figures for the README).

  python benchmarks/bench_demo.py [--n-docs 60] [--seed 0]

Writes the demo corpus into a temporary folder and reports wall and CPU time, the minutes of audio
written, the speed as a multiple of real time, the size on disk, and the spread of document lengths.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hilbert_cli.demo.corpus import load_truth, make_demo_corpus  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-docs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        wall, cpu = time.perf_counter(), time.process_time()
        r = make_demo_corpus(out, n_docs=args.n_docs, seed=args.seed)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        lengths = np.array([d["duration"] for d in load_truth(out).values()])
    print(f"demo-data: {r.n_docs} documents, {r.total_seconds / 60:.1f} min of audio "
          f"(documents {lengths.min():.0f}-{lengths.max():.0f} s, mean {lengths.mean():.0f} s), {size / 1e6:.0f} MB")
    print(f"  wall {wall:.1f} s, CPU {cpu:.1f} s (this process), {r.total_seconds / wall:.0f}x real time, "
          f"on {os.cpu_count()} cores")
    print(f"  labels: {r.label_counts}")


if __name__ == "__main__":
    main()
