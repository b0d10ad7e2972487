"""model.pt: everything `predict` needs, and nothing executable.

The file is a torch.save of plain types and tensors only, so it loads with
torch.load(path, weights_only=True): the restricted unpickler refuses any other object before
it can run. `load_checkpoint` rebuilds the model from the file alone (config + input sizes).
"""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any, Optional

import torch

from .. import __version__
from ..atomic import atomic_save
from .calibration import Temperature
from .config import HilbertConfig
from ..errors import HilbertError, ModelFileError
from .model import build_model

FORMAT = "hilbert-model"
FORMAT_VERSION = 3  # bump when the layout changes; older readers refuse newer files
OLDEST_READABLE = 2  # files of this format version up to FORMAT_VERSION load
# settings added after files were written, whose default is not what those files were trained with: a file whose
# config lacks one was trained with the value given here (section -> key -> value)
BEFORE_SETTING = {"model": {"pool_scores": "context", "positions": 0}}
# 2: fold-stacked weights (leading fold axis of size 1), a checksum of weights and metadata
# 3: "calibration" (None, or a temperature: learn/calibration.py); a version-2 file loads as uncalibrated. Written
#    as 3 so that an older hilbert-cli refuses a calibrated model instead of silently ignoring its temperature.


def _plain(obj: Any, where: str = "checkpoint") -> Any:
    """Deep copy restricted to the types weights_only loading accepts (dict/list/str/number/bool/None/tensor)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, where) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    raise HilbertError(f"{where}: cannot store a {type(obj).__name__} in model.pt; only plain values and tensors.")


def _portable_backbone(name: str) -> str:
    """An alias or hub id as given; a local model folder or file as its absolute path, so that
    `predict` finds it from any working directory (the registry's aliases win, as in backbones.py)."""
    from ..features.backbones import BACKBONES

    path = Path(name).expanduser()
    if name in BACKBONES or not path.exists():
        return name
    return str(path.resolve())


def save_checkpoint(path: str | Path, model: torch.nn.Module, *, config: HilbertConfig, task: str,
                    label_names: list[str], audio: str, text: str, d_audio: int, d_text: int,
                    segmentation: Optional[dict] = None, fingerprints: Optional[dict[str, str]] = None,
                    extra: Optional[dict] = None, calibration: Temperature | None = None) -> Path:
    """Write model.pt atomically. `fingerprints` ({'audio': ..., 'text': ...}) defaults to
    embed.backbone_fingerprint of each backbone, so predict can check it embeds the same way; `calibration`:
    the temperature fitted with train.calibrate (None: the probabilities are the raw softmax)."""
    audio, text = _portable_backbone(audio), _portable_backbone(text)
    if fingerprints is None:
        from ..features.embed import backbone_fingerprint

        fingerprints = {"audio": backbone_fingerprint(audio), "text": backbone_fingerprint(text)}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "task": task,
        "label_names": [str(n) for n in label_names],
        "config": config.to_dict(),
        "backbones": {"audio": {"name": audio, "fingerprint": fingerprints.get("audio")},
                      "text": {"name": text, "fingerprint": fingerprints.get("text")}},
        "segmentation": segmentation or {},
        "input_dims": {"d_audio": int(d_audio), "d_text": int(d_text), "n_classes": len(label_names)},
        "extra": extra or {},
        "calibration": None if calibration is None else calibration.to_dict(),
    }
    payload = _plain(payload)
    payload["state_dict"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    bad = [k for k, v in payload["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelFileError(f"{path}: the trained weights contain NaN or infinity ({bad[0]}); nothing was written. "
                             f"Train again with a lower learning rate (train.lr).")
    payload["checksum"] = checksum(payload)
    return atomic_save(Path(path), lambda f: torch.save(payload, f))


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents (plain types + tensors), after safety and format checks."""
    p = Path(path)
    if not p.is_file():
        raise HilbertError(f"{p}: no such model file; train one with `hilbert train --task TASK`.")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise HilbertError(
            f"{p}: refused to load because the file contains pickled objects that could run code; "
            f"only use model files made by `hilbert train`."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, LookupError, AttributeError, TypeError, ImportError) as e:
        raise HilbertError(f"{p}: not a readable hilbert model file ({type(e).__name__}); give a model.pt made by `hilbert train`.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise HilbertError(f"{p}: not a hilbert model file (no {FORMAT!r} header); give a model.pt made by `hilbert train`.")
    version = payload.get("format_version")
    if isinstance(version, int) and version < OLDEST_READABLE:
        raise ModelFileError(f"{p}: made by an older hilbert-cli (model format {version}, this one reads "
                             f"{OLDEST_READABLE} to {FORMAT_VERSION}); re-train it with `hilbert train`.")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise HilbertError(
            f"{p}: model format version {version!r} is newer than this hilbert-cli understands ({FORMAT_VERSION}); "
            f"upgrade hilbert-cli (the file says it was made by version {payload.get('package_version')!r})."
        )
    missing = [k for k in ("config", "label_names", "input_dims", "state_dict", "task", "backbones") if k not in payload]
    if missing:
        raise HilbertError(f"{p}: the model file is incomplete (missing {', '.join(missing)}); re-train it with `hilbert train`.")
    try:
        intact = payload.get("checksum") == checksum(payload)
    except (TypeError, ValueError, AttributeError):
        intact = False
    if not intact:
        raise ModelFileError(f"damaged model file: {p} does not match its checksum (changed or corrupted after "
                             f"`hilbert train` wrote it); use an intact copy or train again.")
    bad = [k for k, v in payload["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelFileError(f"damaged model file: {p} has NaN or infinite weights ({bad[0]}); train again.")
    return payload


def checksum(payload: dict) -> str:
    """SHA-256 over the metadata (as canonical JSON) and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "checksum")}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for name in sorted(payload["state_dict"]):
        t = payload["state_dict"][name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _with_settings_of_its_time(config: dict) -> dict:
    """The file's config, with the settings it predates (BEFORE_SETTING) at the values it was trained with."""
    if not isinstance(config, dict):
        return config  # HilbertConfig.from_dict says what is wrong with it
    return {**config, **{section: {**values, **config[section]} for section, values in BEFORE_SETTING.items()
                         if isinstance(config.get(section), dict)}}


def load_checkpoint(path: str | Path, device=None) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode on `device` (default: the CPU), metadata without the weights) from model.pt;
    never runs code from the file. A model trained on one device loads on any other."""
    payload = read_checkpoint(path)
    config = HilbertConfig.from_dict(_with_settings_of_its_time(payload["config"]), source=f"{path}: config")
    dims = payload["input_dims"]
    model = build_model(config, dims["d_audio"], dims["d_text"], dims["n_classes"])
    try:
        fit = model.load_state_dict(payload["state_dict"], strict=False)
    except RuntimeError as e:  # a weight of another shape
        raise HilbertError(f"{path}: the weights do not fit the model the file describes ({str(e).splitlines()[-1].strip()}); "
                           f"re-train it with `hilbert train`.") from None
    if fit.missing_keys or fit.unexpected_keys:  # a layout of another hilbert-cli release
        names = ", ".join([f"missing {k}" for k in fit.missing_keys[:2]] + [f"unexpected {k}" for k in fit.unexpected_keys[:2]])
        raise HilbertError(f"{path}: the weights do not fit the model the file describes ({names}; an earlier release's "
                           f"layout); re-train it with `hilbert train`.")
    model.eval()
    if device is not None:
        from ..device import resolve_device

        model = model.to(resolve_device(device))
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    meta["config"] = config.to_dict()  # complete: settings the file predates at the values it was trained with
    meta.setdefault("calibration", None)  # format 2: no calibration
    return model, meta

