"""Atomic file writes: write a temp file in the same folder, then rename over the target.

An interrupted command therefore never leaves a half-written file behind. A write the operating system
refuses (full disk, no permission, a file where a folder should be) raises OutputError naming the path,
the reason and the fix; `check_writable_dir`/`check_writable_file` find that out before long work starts.
Every JSON written is strict JSON: NaN and infinity become null.
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from .errors import OutputError

_UMASK = os.umask(0o022)  # read the process umask (there is no getter) ...
os.umask(_UMASK)  # ... and put it back at once


def _blocking_file(path: Path) -> Optional[Path]:
    """The path itself or the nearest of its parents that exists as something other than a folder."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
        if p.is_symlink():
            return p  # a broken link where a folder should be
    return None


def os_reason(e: OSError, path: Path) -> str:
    """Why the operating system refused `path`, and what to do, as the end of a sentence."""
    code = e.errno
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", None):
        return "the disk is full; free some space (finished work is kept) and run again."
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied; fix its permissions or choose another place."
    if code == errno.EROFS:
        return "the file system is read-only; choose a place on a writable disk."
    blocking = _blocking_file(path.parent) if code in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT) else None
    if blocking is not None:
        return f"{blocking} is a file, not a folder; move that file away or choose another path."
    if code == errno.EISDIR or path.is_dir():
        return f"it is a folder; give a file name (e.g. {path / 'out'})."
    return f"{e.strerror or e}; check the path and the disk, then run again."


def describe_os_error(e: OSError, path: str | os.PathLike | None = None, what: str = "cannot write it") -> str:
    """One sentence for an operating-system error: the path, the reason, and what to do."""
    path = Path(path if path is not None else (e.filename or "?"))
    return f"{path}: {what}: {os_reason(e, path)}"


def check_writable_dir(folder: str | os.PathLike, param: str = "", *, label: str | os.PathLike | None = None) -> Path:
    """Fail now (OutputError) if files cannot be created in `folder` or in the folders it would be made in.
    Creates nothing that is not already there: the probe file goes into the nearest existing folder and is removed.
    The message starts with `param` and `label` (default: the folder)."""
    folder = Path(folder)
    shown = Path(label) if label is not None else folder
    label = " ".join(x for x in (param, str(shown)) if x)
    blocking = _blocking_file(folder)
    if blocking is not None:
        where = "it" if blocking == shown else str(blocking)
        raise OutputError(f"{label}: {where} is a file, not a folder; choose another place or move the file away.",
                          param=param or None)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".hilbert-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{label}: cannot write there: {os_reason(e, existing)}", param=param or None) from None
    return folder


def check_writable_file(path: str | os.PathLike, param: str = "") -> Path:
    """Fail now (OutputError) if `path` cannot be written: a folder is there, or its folder cannot take files."""
    path = Path(path)
    if path.is_dir():
        label = f"{param} {path}" if param else str(path)
        raise OutputError(f"{label}: is a folder; give a file name, e.g. {path / 'out'}.", param=param or None)
    check_writable_dir(path.parent, param, label=path)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    try:
        return _write(path, data)
    except OSError as e:
        raise OutputError(describe_os_error(e, path)) from None


def _write(path: Path, data: bytes) -> Path:
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


def finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None (numpy scalars and arrays become plain values)."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars
        return finite(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def strict_json(obj: Any) -> str:
    """Strict JSON text (NaN and infinity written as null, never as the non-standard NaN/Infinity)."""
    return json.dumps(finite(obj), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, strict_json(obj))


def atomic_save(path: str | os.PathLike, writer) -> Path:
    """Atomically write whatever `writer(fileobj)` writes (e.g. np.savez, fig.savefig, torch.save)."""
    buf = io.BytesIO()
    writer(buf)
    return atomic_write_bytes(path, buf.getvalue())
