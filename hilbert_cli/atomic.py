"""Atomic file writes: write a temp file in the same folder, then rename over the target.

An interrupted command therefore never leaves a half-written file behind.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)  # read the process umask (there is no getter) ...
os.umask(_UMASK)  # ... and put it back at once


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file owner-only (0600); give it the mode a plain open() would
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def atomic_save(path: str | os.PathLike, writer) -> Path:
    """Atomically write whatever `writer(fileobj)` writes (e.g. np.savez, fig.savefig, torch.save)."""
    buf = io.BytesIO()
    writer(buf)
    return atomic_write_bytes(path, buf.getvalue())
