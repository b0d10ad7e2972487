"""Audio reading: any format soundfile reads, any rate, mono or stereo -> 16 kHz float32, one channel or the
average of all, streamed in blocks so that memory stays near the size of the 16 kHz result (a 3-hour recording:
691 MB) whatever the source rate and channel count."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HilbertError

SAMPLE_RATE = 16000  # Hz: what every ASR and audio backbone here expects
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
BLOCK_SECONDS = 30  # seconds of the source read, mixed down and resampled at a time
SLACK_SAMPLES = SAMPLE_RATE  # room beyond the expected length, for formats whose frame count is approximate (mp3)


@dataclass(frozen=True)
class AudioInfo:
    frames: int  # samples per channel at the file's own rate
    rate: int  # Hz
    channels: int

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.rate


def _checked(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise HilbertError(f"{path}: broken link (it points to {os.readlink(path)}, which is not there); "
                           "restore the recording or remove the link.")
    if path.stat().st_size == 0:
        raise HilbertError(f"{path}: empty file (0 bytes); replace it with the recording or remove it.")
    return path


def _unreadable(path: Path, e: Exception) -> HilbertError:
    return HilbertError(f"{path}: cannot read audio ({e}); check that the file is a valid wav/flac/ogg/mp3.")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Length, rate and channel count of a recording, without decoding it."""
    import soundfile as sf

    path = _checked(path)
    try:
        info = sf.info(str(path))
    except sf.SoundFileError as e:  # what libsndfile cannot open or parse
        raise _unreadable(path, e) from None
    if info.frames == 0:
        raise HilbertError(f"{path}: the audio is empty (0 samples); replace or remove the file.")
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))


def load_audio(path: str | os.PathLike, channel: int | None = None) -> np.ndarray:
    """Read `path` as 16 kHz float32 in [-1, 1]: channel `channel` (0 = left), or all channels averaged (None).
    Other rates are resampled with soxr (a band-limited, anti-aliased resampler) as a stream, block by block,
    which gives the same samples as resampling the whole signal at once; only the 16 kHz result is held whole."""
    import soundfile as sf
    import soxr

    path = _checked(path)
    info = audio_info(path)
    if channel is not None and not 0 <= channel < info.channels:
        raise HilbertError(f"{path}: has {info.channels} channel(s), so there is no channel {channel + 1}; "
                           "name one channel per channel of the recording.")
    stream = None if info.rate == SAMPLE_RATE else soxr.ResampleStream(info.rate, SAMPLE_RATE, 1, dtype="float32",
                                                                        quality="HQ")
    out = np.empty(round(info.frames * SAMPLE_RATE / info.rate) + SLACK_SAMPLES, np.float32)
    n = 0

    def put(x: np.ndarray) -> None:
        nonlocal out, n
        if n + len(x) > len(out):  # the header under-counted (approximate mp3 lengths): grow
            out = np.concatenate([out[:n], np.empty(n + len(x) - len(out) + 60 * SAMPLE_RATE, np.float32)])
        out[n:n + len(x)] = x
        n += len(x)

    try:
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=BLOCK_SECONDS * info.rate, dtype="float32", always_2d=True):
                x = block.mean(axis=1) if channel is None else block[:, channel]
                put(stream.resample_chunk(np.ascontiguousarray(x), last=False) if stream else x)
            if stream:
                put(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    except sf.SoundFileError as e:  # a file that breaks off while decoding
        raise _unreadable(path, e) from None
    if n == 0:
        raise HilbertError(f"{path}: the audio is empty (0 samples); replace or remove the file.")
    return out[:n]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
