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

  python benchmarks/bench_segment.py --long [--asr-minutes 60] [--minutes-list 10,60,180]

Long recordings (issue 12): wall time and peak resident memory of `segment_corpus` on one synthetic recording
of each length, each run in a fresh process (its own peak RSS, `ru_maxrss`). A recording is a 5-minute
synthetic interview (eSpeak speech, two voices, pauses) tiled to the length and written as a 44.1-kHz 16-bit
stereo WAV (the same speech on both channels), so reading it means decoding, mixing down and resampling.
Lengths up to `--asr-minutes` are transcribed (no transcript: ASR in 10-minute chunks); longer ones get a
timed .json transcript beside them (no ASR: segmenting then never decodes the audio), and for those
`load_audio` alone is measured too. Target: peak RSS <= 2.5 GB for a 3-hour recording.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
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


BASE_MINUTES = 5.0  # the interview that long recordings are tiled from
LONG_RATE = 44100  # Hz, the rate long recordings are written at


def write_long(folder: Path, minutes: float, with_transcript: bool) -> float:
    """One `minutes`-long recording in `folder` (and its timed transcript); returns its length in seconds."""
    import soxr

    audio, cues = make_interview(BASE_MINUTES * 60)
    base = len(audio) / SAMPLE_RATE
    tile = (soxr.resample(audio, SAMPLE_RATE, LONG_RATE, quality="HQ") * 32767).astype(np.int16)
    tile = np.stack([tile, tile], axis=1)
    n = max(1, round(minutes * 60 / base))
    folder.mkdir()
    with sf.SoundFile(folder / "L01.wav", "w", LONG_RATE, 2, subtype="PCM_16") as f:
        for _ in range(n):
            f.write(tile)
    if with_transcript:
        (folder / "L01.json").write_text(json.dumps(
            [dict(c, start=round(c["start"] + k * base, 3), end=round(c["end"] + k * base, 3))
             for k in range(n) for c in cues]))
    return n * base


CHILD = """
import json, resource, sys, time
from pathlib import Path
from hilbert_cli.corpus.audio import load_audio
from hilbert_cli.corpus.segment import SegmentSettings, segment_corpus
from hilbert_cli.workspace import Workspace
what, folder, ws = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
wall, cpu = time.perf_counter(), time.process_time()
if what == "segment":
    r = segment_corpus(folder, Workspace(ws), SegmentSettings())
    assert not r.failed, r.problems
    extra = {"segments": r.n_segments, "source": r.documents[0].source}
else:
    extra = {"samples": len(load_audio(folder / "L01.wav"))}
print(json.dumps(dict(extra, wall=time.perf_counter() - wall, cpu=time.process_time() - cpu,
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def measure(what: str, folder: Path, ws: Path) -> dict:
    """Run `what` ("segment" or "load_audio") on `folder` in a fresh process: its wall, CPU and peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", CHILD, what, str(folder), str(ws)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def long_recordings(minutes_list: list[float], asr_minutes: float) -> None:
    print(f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}; 44.1-kHz 16-bit stereo WAV, "
          f"tiled from a {BASE_MINUTES:g}-minute synthetic interview")
    for minutes in minutes_list:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            asr = minutes <= asr_minutes
            seconds = write_long(tmp / "c", minutes, with_transcript=not asr)
            runs = [("segment", "ASR, no transcript" if asr else "timed .json transcript, no ASR")]
            runs += [] if asr else [("load_audio", "load_audio alone (16 kHz mono float32)")]
            for what, label in runs:
                r = measure(what, tmp / "c", tmp / "ws")
                print(f"{seconds / 60:6.1f} min  {label:<40} {r['wall']:8.1f} s wall {r['cpu']:8.1f} s cpu "
                      f"{seconds / r['wall']:6.1f}x real time   peak RSS {r['peak_rss_mb'] / 1024:5.2f} GB", flush=True)
    print("target: peak RSS <= 2.5 GB for a 3-hour recording")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--long", action="store_true", help="wall time and peak memory on long recordings instead")
    ap.add_argument("--minutes-list", default="10,60,180", help="--long: recording lengths in minutes")
    ap.add_argument("--asr-minutes", type=float, default=60.0,
                    help="--long: transcribe recordings up to this long; longer ones get a timed transcript")
    args = ap.parse_args()
    if args.long:
        long_recordings([float(m) for m in args.minutes_list.split(",")], args.asr_minutes)
        return
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
