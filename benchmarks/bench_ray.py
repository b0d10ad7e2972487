"""`embed --engine ray` vs the local engine, and Ray's fixed overhead, on this machine.

    python benchmarks/bench_ray.py [--n-docs 8] [--workers 2] [--dir /tmp/bench-ray]

Writes a demo corpus (`hilbert demo-data`), segments it (local engine), then embeds it with the default pair
(whisper-tiny + minilm) twice into copies of that workspace: the local engine, then Ray with `--workers` local
workers (Ray started and stopped inside the timing, as `hilbert embed --engine ray` does). Checks that the two
caches hold the same bytes. Ray's fixed overhead: `ray.init` + one trivial task + `ray.shutdown`, and one actor's
start. Needs the extra: pip install 'hilbert-cli[ray]'."""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import time
from pathlib import Path


def _trivial():
    return 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-docs", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench-ray"))
    a = ap.parse_args()

    import ray

    from hilbert_cli.corpus.segment import SegmentSettings, segment_corpus
    from hilbert_cli.demo.corpus import make_demo_corpus
    from hilbert_cli.engine import make_engine
    from hilbert_cli.features.embed import embed_corpus
    from hilbert_cli.workspace import Workspace

    shutil.rmtree(a.dir, ignore_errors=True)
    corpus = make_demo_corpus(a.dir / "demo", n_docs=a.n_docs, seed=0)
    base = Workspace(a.dir / "ws")
    segment_corpus(corpus.out_dir, base, SegmentSettings())
    runs = {}
    for name in ("local", "ray"):
        ws_dir = a.dir / f"ws-{name}"
        shutil.copytree(base.root, ws_dir)
        ws = Workspace(ws_dir)
        t0 = time.perf_counter()
        with make_engine(name, **({"workers": a.workers} if name == "ray" else {})) as engine:
            r = embed_corpus(ws, engine=engine)
        runs[name] = (time.perf_counter() - t0, r)
    left, right = a.dir / "ws-local" / "embeddings", a.dir / "ws-ray" / "embeddings"
    files = sorted(p.relative_to(left) for p in left.rglob("*.npz"))
    same = files == sorted(p.relative_to(right) for p in right.rglob("*.npz")) and all(
        filecmp.cmp(left / f, right / f, shallow=False) for f in files)

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    t1 = time.perf_counter()
    ray.get(ray.remote(_trivial).remote())
    t_task = time.perf_counter() - t1

    class Probe:
        def ping(self):
            return 1

    t2 = time.perf_counter()
    ray.get(ray.remote(Probe).remote().ping.remote())
    t_actor = time.perf_counter() - t2
    t3 = time.perf_counter()
    ray.shutdown()
    t_down = time.perf_counter() - t3

    r = runs["local"][1]
    print(f"corpus: {a.n_docs} documents, {r.segments} segments, {r.audio_seconds / 60:.1f} min of audio; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for name, (wall, res) in runs.items():
        print(f"embed --engine {name:5s}: {wall:6.1f} s wall ({res.audio_seconds / wall:.0f}x real time)")
    print(f"same cache bytes: {same} ({len(files)} files)")
    print(f"Ray fixed overhead: init {t_init:.1f} s, first trivial task {t_task:.2f} s, first actor {t_actor:.2f} s, "
          f"shutdown {t_down:.1f} s")


if __name__ == "__main__":
    main()
