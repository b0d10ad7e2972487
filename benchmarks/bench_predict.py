"""Time of `hilbert predict` on one 60-s recording, first (nothing cached) and again (everything cached).

A 60-s interview is synthesised with eSpeak NG, with no transcript (so predict transcribes it: the
slowest path) and, as a second file, with a timed transcript beside it. The model is a randomly
initialised `hilbert` model for the default backbones (whisper-tiny + minilm): predict's cost does not
depend on what the weights learnt. Reported: predict_files in this process (first call in a fresh
workspace, then again), and the `hilbert predict` command end to end (includes starting Python and
importing torch).

    python benchmarks/bench_predict.py [--seconds 60]
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

import numpy as np
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hilbert_cli.corpus.audio import SAMPLE_RATE  # noqa: E402
from hilbert_cli.demo.tts import synthesize  # noqa: E402

SENTENCES = [
    "How have you been sleeping over the last two weeks?",
    "Mostly fine, although I wake up early and cannot get back to sleep.",
    "Work has been busy, and I have not seen my friends very much.",
    "On the weekend we went for a long walk by the river.",
    "Sometimes I feel tired for no reason at all.",
    "What do you usually do in the evenings?",
    "I cook dinner, watch a little television and go to bed.",
]


def make_recording(path: Path, seconds: float, timed_transcript: bool) -> float:
    pieces, cues, t, k = [], [], 0.0, 0
    while t < seconds:
        text = SENTENCES[k % len(SENTENCES)]
        audio, _ = synthesize(text, rate_wpm=170 + 5 * (k % 4))
        cues.append({"start": round(t, 3), "end": round(t + len(audio) / SAMPLE_RATE, 3), "text": text})
        pieces += [audio, np.zeros(int(0.6 * SAMPLE_RATE), np.float32)]
        t += len(audio) / SAMPLE_RATE + 0.6
        k += 1
    sf.write(path, np.concatenate(pieces), SAMPLE_RATE)
    if timed_transcript:
        path.with_suffix(".json").write_text(json.dumps(cues))
    return t


def make_model(path: Path) -> None:
    from hilbert_cli.learn.checkpoint import save_checkpoint
    from hilbert_cli.learn.config import HilbertConfig
    from hilbert_cli.learn.model import build_model
    from hilbert_cli.corpus.segment import SegmentSettings
    from dataclasses import asdict

    import torch

    torch.manual_seed(0)
    cfg = HilbertConfig()
    model = build_model(cfg, 384, 384, 2).eval()
    save_checkpoint(path, model, config=cfg, task="demo", label_names=["a", "b"], audio="whisper-tiny", text="minilm",
                    d_audio=384, d_text=384, segmentation=asdict(SegmentSettings()))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    from hilbert_cli.predict import predict_files

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "model.pt"
        make_model(model)
        rows = []
        for name, timed_transcript in (("no transcript (ASR)", False), ("timed transcript", True)):
            wav = tmp / f"{'asr' if not timed_transcript else 'timed'}" / "rec.wav"
            wav.parent.mkdir()
            dur = make_recording(wav, args.seconds, timed_transcript)
            ws = tmp / f"ws-{wav.parent.name}"
            r1, first = timed(lambda: predict_files(model, [wav], workspace=ws))
            r2, again = timed(lambda: predict_files(model, [wav], workspace=ws))
            assert not r1.failed and r1.to_json() == r2.to_json()
            cmd = [sys.executable, "-m", "hilbert_cli", "predict", str(model), str(wav), "-w", str(ws)]
            _, cli = timed(lambda: subprocess.run(cmd, check=True, capture_output=True))
            cli_ws = tmp / f"cli-{wav.parent.name}"
            _, cli_first = timed(lambda: subprocess.run(cmd[:-1] + [str(cli_ws)], check=True, capture_output=True))
            rows.append((name, dur, len(r1.predictions[0].segments), first, again, cli_first, cli))
    print(f"hilbert predict, one recording, default backbones (whisper-tiny + minilm), {os.cpu_count()} CPU cores")
    print(f"{'input':<22}{'audio s':>8}{'segments':>9}{'first s':>9}{'cached s':>9}{'CLI first s':>12}{'CLI cached s':>13}")
    for name, dur, n, first, again, cli_first, cli in rows:
        print(f"{name:<22}{dur:>8.1f}{n:>9d}{first:>9.2f}{again:>9.2f}{cli_first:>12.2f}{cli:>13.2f}")
    print("first = nothing cached (ASR if no transcript, encoders load and run); cached = the same file again;")
    print("CLI = the `hilbert predict` command end to end, including Python start-up and imports.")


if __name__ == "__main__":
    main()
