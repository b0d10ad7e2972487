"""Audio reading: any format soundfile reads, any rate, mono or stereo -> 16 kHz mono float32."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import HilbertError

SAMPLE_RATE = 16000  # Hz: what every ASR and audio backbone here expects
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """Read `path` as 16 kHz mono float32 in [-1, 1]; stereo is averaged, other rates are
    resampled with soxr (a band-limited, anti-aliased resampler)."""
    import soundfile as sf
    import soxr

    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise HilbertError(f"{path}: broken link (it points to {os.readlink(path)}, which is not there); "
                           "restore the recording or remove the link.")
    if path.stat().st_size == 0:
        raise HilbertError(f"{path}: empty file (0 bytes); replace it with the recording or remove it.")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for unreadable files
        raise HilbertError(f"{path}: cannot read audio ({e}); check that the file is a valid wav/flac/ogg/mp3.") from None
    if data.shape[0] == 0:
        raise HilbertError(f"{path}: the audio is empty (0 samples); replace or remove the file.")
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
