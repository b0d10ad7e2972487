"""Benchmark of `hilbert segment` on this machine (prints figures for the README).

  python benchmarks/bench_segment.py [--minutes 5]

Synthesises one interview of about `--minutes` minutes with eSpeak NG (questions and answers
from the demo corpus's sentence banks, with pauses), then times `segment_corpus` on it:
  - ASR path: no transcript, the default faster-whisper tiny.en (model loading included);
  - plain-transcript path: the .txt is aligned to the ASR word timings (ASR from the cache);
  - timed-transcript path: a .json of cues, no ASR;
  - a resumed re-run (nothing to do).
Real-time factor = audio seconds / wall seconds; the CPU seconds are printed too, since the wall
time depends on what else the machine is running (see the load average printed first). Target (issue 2): the default ASR path
>= 20x real time, i.e. a 5-minute interview in <= 15 s on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from hilbert_cli.corpus.audio import SAMPLE_RATE  # noqa: E402
from hilbert_cli.demo.text import NEUTRAL, QUESTIONS  # noqa: E402
from hilbert_cli.corpus.segment import SegmentSettings, segment_corpus  # noqa: E402
from hilbert_cli.demo.tts import synthesize  # noqa: E402
from hilbert_cli.workspace import Workspace  # noqa: E402


def make_interview(seconds: float, seed: int = 0):
    """(16 kHz audio, cues) of alternating questions and 1-3 sentence answers with pauses."""
    rng = np.random.default_rng(seed)
    parts, cues, t = [], [], 0.5
    parts.append(np.zeros(int(0.5 * SAMPLE_RATE), np.float32))
    while t < seconds:
        turn = [str(rng.choice(QUESTIONS))] + [str(rng.choice(NEUTRAL)) for _ in range(rng.integers(1, 4))]
        for k, text in enumerate(turn):
            audio, _ = synthesize(text, voice="en-us" if k else "en-us+f2", rate_wpm=int(rng.integers(150, 200)))
            cues.append({"start": round(t, 3), "end": round(t + len(audio) / SAMPLE_RATE, 3), "text": text})
            pause = rng.uniform(0.3, 1.2) if k else rng.uniform(0.6, 1.5)
            parts += [audio, np.zeros(int(pause * SAMPLE_RATE), np.float32)]
            t += len(audio) / SAMPLE_RATE + pause
    audio = np.concatenate(parts)
    audio += rng.normal(0, 10 ** (-50 / 20), len(audio)).astype(np.float32)  # a quiet room, not digital silence
    return audio, cues


def timed(label: str, seconds: float, fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<42} {wall:7.2f} s wall {cpu:7.2f} s cpu   {seconds / wall:7.1f}x real time "
          f"(audio s per cpu s: {seconds / max(cpu, 1e-9):.1f})")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio, cues = make_interview(args.minutes * 60)
        seconds = len(audio) / SAMPLE_RATE
        words = sum(len(c["text"].split()) for c in cues)
        print(f"interview: {seconds:.1f} s, {len(cues)} sentences, {words} words; "
              f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}")
        corpora = {k: tmp / k for k in ("asr", "txt", "json")}
        for name, folder in corpora.items():
            folder.mkdir()
            sf.write(folder / "I01.wav", audio, SAMPLE_RATE)
        (corpora["txt"] / "I01.txt").write_text(" ".join(c["text"] for c in cues))
        (corpora["json"] / "I01.json").write_text(json.dumps(cues))
        ws = Workspace(tmp / "ws")

        r = timed("ASR path (no transcript, model load incl.)", seconds,
                  lambda: segment_corpus(corpora["asr"], ws, SegmentSettings()))
        timed("resumed re-run (nothing to do)", seconds,
              lambda: segment_corpus(corpora["asr"], ws, SegmentSettings()))
        timed("plain .txt aligned to cached ASR timings", seconds,
              lambda: segment_corpus(corpora["txt"], ws, SegmentSettings()))
        timed("timed .json cues (no ASR)", seconds,
              lambda: segment_corpus(corpora["json"], ws, SegmentSettings()))
        print(f"segments: {r.n_segments}, mean {r.mean_words:.1f} words and {r.mean_seconds:.2f} s per segment "
              f"(the paper: 17 words, 6.47 s)")
        print(f"target: the ASR path >= 20x real time ({seconds / 20:.1f} s for this interview)")


if __name__ == "__main__":
    main()
