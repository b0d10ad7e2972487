"""Offline speaker diarization: who speaks when, for a recording whose transcript names no speaker.

One backend, `resemblyzer` (the registry `DIARIZERS` leaves room for more):
  1. speech: Silero VAD, the ONNX model bundled with faster-whisper (a core dependency);
  2. voices: a d-vector (GE2E speaker encoder: 3-layer LSTM over 40 mel bands, 256 dimensions) for every
     1.6-s window of speech, one every 0.5 s. Its weights (17 MB) ship inside the `resemblyzer` wheel, the
     optional extra `hilbert-cli[diarize]`. Only that weights file is read: the `resemblyzer` package is never
     imported (its import needs `pkg_resources`, which recent setuptools no longer has), so the network model
     and the mel spectrogram are rebuilt here (the same features as its librosa code, to 1e-6);
  3. clustering: average-linkage agglomerative clustering of the windows (cosine distance) into
     `num_speakers` voices (default 2: an interview); then any two voices whose mean d-vectors are more alike
     than SAME_VOICE (cosine) are one voice, so `num_speakers` is an upper bound and a monologue stays one speaker;
  4. turns: each 10-ms frame of speech takes the voice that the windows covering it are, on average, closest
     to; runs of one voice are the turns.
Speakers are named `speaker1`, `speaker2`, ... in order of first appearance. Same audio -> same turns (no
sampling anywhere; the model runs in inference mode). Nothing touches the network.
"""
from __future__ import annotations

import bisect
import hashlib
import importlib.util
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_json
from ..errors import HilbertError
from .audio import SAMPLE_RATE

DEFAULT_DIARIZER = "resemblyzer"
DIARIZERS = ("resemblyzer",)
NUM_SPEAKERS = 2  # voices looked for by default: an interviewer and a participant
PARTICIPANT = "participant"  # `--speakers participant`: the diarized voice with the most speech in each recording
SAME_VOICE = 0.85  # cosine of two voices' mean d-vectors above which they are one voice (one eSpeak voice split
#                    in two: 0.92; two eSpeak voices: 0.69; different people are usually well below 0.8)
WINDOW_FRAMES, HOP_FRAMES = 160, 50  # 1.6-s d-vector windows (the encoder's training length), every 0.5 s
FRAME_S = 0.01  # mel frame step
MIN_SPEECH_MS, MIN_SILENCE_MS = 200, 300  # VAD: shorter speech is dropped, shorter silences are bridged
BATCH = 64  # windows per encoder call
CPU_THREADS = 1  # the encoder is small: on the shared 2-core test machine 1 thread ran 18x real time, 2 threads 2.4x
DIARIZE_VERSION = 1  # bump when the pipeline changes, so cached turns from older code are not reused
INSTALL_HINT = "install it with `pip install 'hilbert-cli[diarize]'` (or `pip install resemblyzer`)"


@dataclass(frozen=True)
class Turn:
    start: float  # seconds
    end: float
    speaker: str  # speaker1, speaker2, ... by first appearance


def load_diarizer(name: str = DEFAULT_DIARIZER, *, device: torch.device | None = None,
                  threads: int | None = None) -> GE2EDiarizer:
    """The diarizer `name` (one of DIARIZERS) on `device` (None = CPU) with `threads` torch threads while it runs
    (None: CPU_THREADS on the CPU, torch's own setting on a GPU). Raises HilbertError, naming the package, when its
    optional extra is missing."""
    if name not in DIARIZERS:
        raise HilbertError(f"--diarize: unknown diarizer {name!r}; choose one of {', '.join(DIARIZERS)}.")
    return GE2EDiarizer(_weights_path(), device=device, threads=threads)


def _weights_path() -> Path:
    """The GE2E weights inside the installed `resemblyzer` package (found without importing it)."""
    try:
        spec = importlib.util.find_spec("resemblyzer")
    except (ImportError, ValueError):
        spec = None
    path = Path(spec.submodule_search_locations[0]) / "pretrained.pt" if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise HilbertError(f"--diarize: speaker diarization needs the `resemblyzer` package (its speaker-encoder "
                           f"weights); {INSTALL_HINT}.")
    return path


class _Encoder(torch.nn.Module):
    """The GE2E speaker encoder of `resemblyzer` (its VoiceEncoder without the training-only parameters)."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        e = torch.relu(self.linear(hidden[-1]))
        return e / e.norm(dim=1, keepdim=True).clamp_min(1e-9)


def _mel_basis(sr: int = SAMPLE_RATE, n_fft: int = 400, n_mels: int = 40) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) (Slaney mel scale and area normalisation), without librosa."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=float)
        return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-10) / 1000) / (np.log(6.4) / 27), f / (200 / 3))

    def mel_to_hz(m):
        return np.where(m >= 15, 1000 * np.exp((np.log(6.4) / 27) * (m - 15)), m * (200 / 3))

    fft_freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff, ramps = np.diff(mel_f), mel_f[:, None] - fft_freqs[None, :]
    weights = np.maximum(0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    return (weights * (2 / (mel_f[2:] - mel_f[:-2]))[:, None]).astype(np.float32)


def mel_frames(audio: np.ndarray) -> torch.Tensor:
    """(frames, 40) power mel spectrogram, 25-ms windows every 10 ms: what the encoder was trained on."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    spec = torch.stft(x, 400, 160, 400, torch.hann_window(400), center=True, pad_mode="constant",
                      return_complex=True).abs() ** 2
    return (torch.from_numpy(_mel_basis()) @ spec).T.contiguous()


def speech_regions(audio: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) sample ranges of speech (Silero VAD)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(min_speech_duration_ms=MIN_SPEECH_MS, min_silence_duration_ms=MIN_SILENCE_MS, speech_pad_ms=30)
    return [(int(t["start"]), int(t["end"])) for t in get_speech_timestamps(audio, opts, sampling_rate=SAMPLE_RATE)]


def _windows(regions: list[tuple[int, int]], n_frames: int) -> list[tuple[int, int]]:
    """[a, b) frame ranges of the d-vector windows: every HOP_FRAMES inside each speech region, the last one
    flush with its end; a region shorter than a window is one window."""
    out = []
    for s, e in regions:
        a, b = s // 160, min(-(-e // 160), n_frames)
        if b - a <= WINDOW_FRAMES:
            if b > a:
                out.append((a, b))
            continue
        out += [(k, k + WINDOW_FRAMES) for k in range(a, b - WINDOW_FRAMES + 1, HOP_FRAMES)]
        if out[-1][1] < b:
            out.append((b - WINDOW_FRAMES, b))
    return out


def cluster(embeddings: np.ndarray, num_speakers: int) -> np.ndarray:
    """Voice index of each (L2-normalised) embedding: agglomerative clustering into at most `num_speakers`
    voices, then voices more alike than SAME_VOICE merged. Indices 0..k-1, in no particular order."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    k = min(num_speakers, n)
    if k <= 1:
        return np.zeros(n, dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(embeddings)
    while True:
        ids = np.unique(labels)
        if len(ids) <= 1:
            break
        c = _centroids(embeddings, labels, ids)
        sim = c @ c.T
        np.fill_diagonal(sim, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[i, j] <= SAME_VOICE:
            break
        labels[labels == ids[max(i, j)]] = ids[min(i, j)]
    return np.unique(labels, return_inverse=True)[1]


def _centroids(embeddings: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    c = np.stack([embeddings[labels == k].mean(axis=0) for k in ids])
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-9)


class GE2EDiarizer:
    """Diarization with the GE2E d-vectors of the `resemblyzer` wheel (see the module docstring)."""

    name = "resemblyzer"

    def __init__(self, weights: Path, device: torch.device | None = None, threads: int | None = None):
        self.device = device if device is not None else torch.device("cpu")
        self.weights = Path(weights)
        self.threads = threads if threads is not None or self.device.type != "cpu" else CPU_THREADS
        self.identity = f"{self.name}:ge2e:{self.weights.stat().st_size}:v{DIARIZE_VERSION}"
        self._model: _Encoder | None = None

    def _encoder(self) -> _Encoder:
        if self._model is None:
            try:
                state = torch.load(self.weights, map_location="cpu", weights_only=True)["model_state"]
                model = _Encoder()
                model.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity")})
            except (OSError, RuntimeError, KeyError, ValueError, pickle.UnpicklingError) as e:  # damaged or foreign
                raise HilbertError(f"{self.weights}: cannot load the speaker-encoder weights ({e}); reinstall "
                                   "`resemblyzer`.") from None
            self._model = model.eval().to(self.device)
        return self._model

    def diarize(self, audio: np.ndarray, num_speakers: int = NUM_SPEAKERS) -> list[Turn]:
        """Turns of `audio` (16 kHz mono float32), sorted and not overlapping; [] when it holds no speech."""
        from ..learn.trainer import torch_threads

        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise HilbertError(f"audio: diarization needs mono samples at {SAMPLE_RATE} Hz, got shape {audio.shape}.")
        if num_speakers < 1:
            raise HilbertError(f"--num-speakers: must be at least 1, got {num_speakers}.")
        regions = speech_regions(audio)
        if not regions:
            return []
        with torch_threads(self.threads), torch.inference_mode():
            mels = mel_frames(audio)
            windows = _windows(regions, len(mels))
            embeddings = self._embed(mels, windows)
        labels = cluster(embeddings, num_speakers)
        return _turns(regions, windows, embeddings, labels, len(mels))

    def _embed(self, mels: torch.Tensor, windows: list[tuple[int, int]]) -> np.ndarray:
        model, out = self._encoder(), np.zeros((len(windows), 256), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, (a, b) in enumerate(windows):
            by_length.setdefault(b - a, []).append(i)
        for length, idx in sorted(by_length.items()):
            for k in range(0, len(idx), BATCH):
                part = idx[k:k + BATCH]
                batch = torch.stack([mels[windows[i][0]:windows[i][1]] for i in part]).to(self.device)
                out[part] = model(batch).float().cpu().numpy()
        return out


def _turns(regions, windows, embeddings: np.ndarray, labels: np.ndarray, n_frames: int) -> list[Turn]:
    """Frame-level voices (mean similarity of the covering windows to each voice's centroid) -> turns, with the
    voices named by first appearance."""
    ids = np.unique(labels)
    sim = embeddings @ _centroids(embeddings, labels, ids).T  # (windows, voices)
    score, count = np.zeros((n_frames, len(ids))), np.zeros(n_frames)
    for (a, b), s in zip(windows, sim):
        score[a:b] += s
        count[a:b] += 1
    voice = np.where(count > 0, score.argmax(axis=1), -1)
    runs = []  # (first frame, end frame, voice)
    for s, e in regions:
        a, b = s // 160, min(-(-e // 160), n_frames)
        k = a
        while k < b:
            j = k
            while j < b and voice[j] == voice[k]:
                j += 1
            if voice[k] >= 0:
                runs.append((k, j, int(voice[k])))
            k = j
    names: dict[int, str] = {}
    for _, _, v in runs:
        names.setdefault(v, f"speaker{len(names) + 1}")
    turns: list[Turn] = []
    for a, b, v in runs:
        start, end = a * FRAME_S, b * FRAME_S
        if turns and turns[-1].speaker == names[v] and start - turns[-1].end < 1e-6:
            turns[-1] = Turn(turns[-1].start, round(end, 3), names[v])
        else:
            turns.append(Turn(round(start, 3), round(end, 3), names[v]))
    return turns


def speakers_of(turns: list[Turn], spans) -> list[str | None]:
    """The speaker of each (start, end) span: the one whose turns overlap it most (ties: the earlier turn);
    a span in no turn gets the nearest turn's speaker; None for all when there are no turns."""
    if not turns:
        return [None] * len(spans)
    starts = [t.start for t in turns]
    out = []
    for s, e in spans:
        e = max(e, s + 1e-3)
        i = bisect.bisect_left(starts, e)  # turns[:i] start before the span ends
        overlap: dict[str, float] = {}
        j = i - 1
        while j >= 0 and turns[j].end > s:  # turns are sorted and disjoint, so their ends are sorted too
            t = turns[j]
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + min(e, t.end) - max(s, t.start)
            j -= 1
        if overlap:
            best = max(overlap.values())
            out.append(next(t.speaker for t in turns[j + 1:i] if overlap[t.speaker] == best))
            continue
        before = turns[i - 1] if i > 0 else None
        after = turns[i] if i < len(turns) else None
        if after is None or (before is not None and s - before.end <= after.start - e):
            out.append(before.speaker)
        else:
            out.append(after.speaker)
    return out


def speech_time(turns: list[Turn]) -> dict[str, float]:
    """Seconds of speech per speaker, most first (ties in order of first appearance)."""
    out: dict[str, float] = {}
    for t in turns:
        out[t.speaker] = out.get(t.speaker, 0.0) + t.end - t.start
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def most_speech(speech: dict[str, float]) -> str | None:
    """The stated rule of `--speakers participant`: the speaker with the most speech time (ties: the first named)."""
    named = {k: v for k, v in speech.items() if k}
    if not named:
        return None
    return max(named, key=lambda k: (named[k], -_label_order(k)))


def _label_order(name: str) -> int:
    digits = name.removeprefix("speaker")
    return int(digits) if digits.isdigit() else 0


def cache_path(cache_dir: str | os.PathLike, audio_sha256: str, identity: str, num_speakers: int) -> Path:
    key = hashlib.sha256(f"{identity}|n{num_speakers}".encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{audio_sha256[:24]}-diarized-{key}.json"


def diarize_cached(diarizer: GE2EDiarizer, audio: np.ndarray, audio_sha256: str,
                   cache_dir: str | os.PathLike | None, num_speakers: int = NUM_SPEAKERS) -> list[Turn]:
    """`diarizer.diarize(audio)`, from the cache (beside the ASR transcripts) when this audio was diarized before."""
    if cache_dir is None:
        return diarizer.diarize(audio, num_speakers)
    path = cache_path(cache_dir, audio_sha256, diarizer.identity, num_speakers)
    if path.is_file():
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("audio_sha256") == audio_sha256 and d.get("diarizer") == diarizer.identity:
                return [Turn(float(s), float(e), str(sp)) for s, e, sp in d["turns"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            pass  # a damaged cache entry is simply redone
    turns = diarizer.diarize(audio, num_speakers)
    atomic_write_json(path, {"audio_sha256": audio_sha256, "diarizer": diarizer.identity,
                             "num_speakers": num_speakers, "turns": [[t.start, t.end, t.speaker] for t in turns]})
    return turns
