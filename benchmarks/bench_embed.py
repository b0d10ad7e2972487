"""Benchmark of `hilbert embed` on this machine (prints figures for the README).

  python benchmarks/bench_embed.py [--docs 6] [--minutes 3]

Reports, for the default pair (whisper-tiny + minilm) on a corpus of synthetic speech:
  - the real-time factor of a first run (model loading included) and of the audio encoding alone;
  - window-packed Whisper encoding (each document once, 30-s windows) vs padding every segment into its
    own 30-s window;
  - the cost of a fully cached re-run, as a fraction of the first run.
Targets (issue 3): >= 60x real time for the default pair; a cached re-run <= 2% of the first run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from hilbert_cli import encoders  # noqa: E402
from hilbert_cli.corpus.audio import SAMPLE_RATE, file_sha256, load_audio  # noqa: E402
from hilbert_cli.features.backbones import load_backbone  # noqa: E402
from hilbert_cli.features.embed import embed_corpus  # noqa: E402
from hilbert_cli.workspace import Manifest, Segment, SegmentedDoc, Workspace  # noqa: E402

SENTENCES = [
    "I have been sleeping badly for a few weeks now and I wake up very early.",
    "On good days I go for a walk by the river with my sister and her dog.",
    "Work has been busy, and I find it harder to concentrate than I used to.",
    "We talked about the holidays and what we might do if the weather holds.",
    "Sometimes I do not feel like seeing anyone, so I just stay in my room.",
    "My favourite meal is still the soup my grandmother used to make on Sundays.",
    "The bus was late again this morning, so I missed the start of the meeting.",
    "I think things are slowly getting better, but it is hard to say for sure.",
]
PAUSE_SECONDS = 0.6


def _speaker():
    """Synthetic speech (hilbert_cli.demo.tts, espeak-ng) if available, else tones with a speech-like envelope."""
    try:
        from hilbert_cli.demo.tts import synthesize

        return lambda text, k: synthesize(text, rate_wpm=150 + 10 * (k % 4), pitch=40 + 5 * (k % 5))[0], "espeak-ng speech"
    except ImportError:
        rng = np.random.default_rng(0)

        def tones(text, k):
            n = int(len(text.split()) * 0.38 * SAMPLE_RATE)
            t = np.arange(n) / SAMPLE_RATE
            env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
            return (0.1 * env * np.sin(2 * np.pi * (120 + 20 * k) * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)

        return tones, "tones (hilbert_cli.demo.tts not available)"


def build_corpus(root: Path, n_docs: int, minutes: float) -> tuple[Workspace, str]:
    speak, what = _speaker()
    clips = [speak(s, k) for k, s in enumerate(SENTENCES)]
    ws = Workspace(root / "ws")
    docs = {}
    for d in range(n_docs):
        parts, segs, t, i = [], [], 0.0, 0
        while t < minutes * 60:
            k = (d + i) % len(SENTENCES)
            clip = clips[k]
            segs.append(Segment(f"D{d:02d}", i, t, t + len(clip) / SAMPLE_RATE, SENTENCES[k], "transcript"))
            parts += [clip, np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), np.float32)]
            t += len(clip) / SAMPLE_RATE + PAUSE_SECONDS
            i += 1
        path = root / f"D{d:02d}.wav"
        sf.write(path, np.concatenate(parts), SAMPLE_RATE)
        sha = file_sha256(path)
        ws.write_doc(SegmentedDoc(f"D{d:02d}", str(path), sha, t, segs))
        docs[f"D{d:02d}"] = {"audio": str(path), "audio_sha256": sha, "subject": None, "labels": {}}
    ws.write_manifest(Manifest(str(root), docs, [], {}))
    return ws, what


def per_segment_frames(enc, audio: np.ndarray, spans) -> np.ndarray:
    """The wasteful alternative: every segment zero-padded into its own 30-s window."""
    out = []
    for first in range(0, len(spans), encoders.WHISPER_WINDOW_BATCH):
        batch = spans[first:first + encoders.WHISPER_WINDOW_BATCH]
        feats = []
        for start, end in batch:
            clip = audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)][: encoders.WHISPER_WINDOW_SAMPLES]
            feats.append(enc.window_features(np.pad(clip, (0, encoders.WHISPER_WINDOW_SAMPLES - len(clip)))))
        frames = enc.encode_windows(np.stack(feats), None)
        for (start, end), f in zip(batch, frames):
            out.append(f[: max(1, int((end - start) * encoders.WHISPER_FRAME_RATE))].mean(axis=0))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=6)
    ap.add_argument("--minutes", type=float, default=3.0, help="length of each document")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ws, what = build_corpus(Path(tmp), args.docs, args.minutes)
        docs = [ws.load_doc(d) for d in sorted(ws.load_manifest().documents)]
        total = sum(d.duration for d in docs)
        n_segs = sum(len(d.segments) for d in docs)
        print(f"corpus: {len(docs)} documents, {total / 60:.1f} min of {what}, {n_segs} segments "
              f"({total / n_segs:.1f} s each); {os.cpu_count()} CPU cores")

        cpu0 = time.process_time()
        first = embed_corpus(ws)
        cpu = time.process_time() - cpu0
        print(f"first run (whisper-tiny + minilm, model loading included): {first.seconds:.1f} s = "
              f"{first.realtime_factor:.0f}x real time; {cpu:.1f} CPU-seconds over {os.cpu_count()} cores "
              f"(= {total / (cpu / os.cpu_count()):.0f}x real time if the cores were not shared; load average now "
              f"{os.getloadavg()[0]:.1f})")
        cached = embed_corpus(ws)
        print(f"fully cached re-run: {cached.seconds * 1000:.0f} ms = {100 * cached.seconds / first.seconds:.2f}% "
              f"of the first run (computed: {cached.audio_computed} audio, {cached.text_computed} text)")

        enc = load_backbone("whisper-tiny")
        text_enc = load_backbone("minilm")
        audios = [load_audio(d.audio_path) for d in docs]
        t0, cpu0 = time.perf_counter(), time.process_time()
        for doc, audio in zip(docs, audios):
            enc.embed_segments(audio, [(s.start, s.end) for s in doc.segments])
        packed, packed_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        t0 = time.perf_counter()
        text_enc.embed_texts([s.text for d in docs for s in d.segments])
        text_s = time.perf_counter() - t0
        print(f"steady state (models loaded): audio {packed:.1f} s = {total / packed:.0f}x real time "
              f"({packed_cpu:.1f} CPU-seconds); "
              f"text {text_s:.1f} s; pair {total / (packed + text_s):.0f}x real time")
        t0, cpu0 = time.perf_counter(), time.process_time()
        for doc, audio in zip(docs, audios):
            per_segment_frames(enc, audio, [(s.start, s.end) for s in doc.segments])
        per_seg, per_seg_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        windows = sum(int(np.ceil(d.duration / 30)) for d in docs)
        print(f"whisper-tiny window-packed: {windows} windows, {packed:.1f} s ({packed_cpu:.1f} CPU-s); "
              f"per-segment padding: {n_segs} windows, {per_seg:.1f} s ({per_seg_cpu:.1f} CPU-s): "
              f"{per_seg / packed:.1f}x slower")


if __name__ == "__main__":
    main()
