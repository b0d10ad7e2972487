"""`HilbertClassifier`: the library face of the model, with scikit-learn conventions.

Parameters in `__init__`, learning in `fit`, fitted attributes ending in `_`. Documents are lists of
per-document arrays of frozen segment features: audio (S_i, d_audio) and text (S_i, d_text), aligned
segment by segment. `save` writes the same model.pt that `hilbert train` writes and `hilbert predict` reads.

    clf = HilbertClassifier("hilbert", config={"train.epochs": 40}).fit(audio, text, y)
    clf.predict_proba(audio_new, text_new)      # (n, C), columns in clf.classes_ order
    # temperature scaling fitted on a 20 % inner validation split: clf.calibration_.temperature
    HilbertClassifier(config={"train.val_fraction": 0.2, "train.calibrate": True}).fit(audio, text, y)
    clf.save("model.pt"); HilbertClassifier.load("model.pt")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..device import resolve_device
from ..errors import ConfigError, DataError, NotFittedError
from .config import HilbertConfig, load_config

ConfigLike = Union[HilbertConfig, dict, None]


def resolve_config(configuration: Optional[str], config: ConfigLike, seed: Optional[int] = None) -> HilbertConfig:
    """A HilbertConfig from a config object or a dict of dotted overrides, with `configuration` and `seed` set."""
    if isinstance(config, HilbertConfig):
        base = config
    elif config is None or isinstance(config, dict):
        base = load_config(None, dict(config or {}))
    else:
        raise ConfigError(f"config: expected a HilbertConfig or a dict of overrides such as {{'train.epochs': 40}}, "
                          f"got {type(config).__name__}.", param="config")
    over: dict[str, Any] = {}
    if configuration is not None and configuration != base.configuration:
        over["configuration"] = configuration
    if seed is not None:
        over["train.seed"] = int(seed)
    return base.replace(**over) if over else base


def check_documents(audio, text) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-document float32 arrays, checked: same count, 2-D, same segments per document, same widths, finite."""
    if audio is None or text is None or len(audio) != len(text) or len(audio) == 0:
        raise DataError(f"audio, text: need the same non-zero number of documents, got "
                        f"{0 if audio is None else len(audio)} and {0 if text is None else len(text)}.", param="audio")
    A, T = [], []
    for i, (a, t) in enumerate(zip(audio, text)):
        a, t = np.asarray(a, dtype=np.float32), np.asarray(t, dtype=np.float32)
        if a.ndim != 2 or t.ndim != 2 or len(a) != len(t) or len(a) == 0:
            raise DataError(f"document {i}: audio and text must be (segments, dim) arrays with the same number of at least "
                            f"one segment, got shapes {a.shape} and {t.shape}.", param="audio")
        if A and (a.shape[1] != A[0].shape[1] or t.shape[1] != T[0].shape[1]):
            raise DataError(f"document {i}: feature widths {a.shape[1]}/{t.shape[1]} differ from document 0's "
                            f"{A[0].shape[1]}/{T[0].shape[1]}; every document needs the same encoders.", param="audio")
        if not (np.isfinite(a).all() and np.isfinite(t).all()):
            raise DataError(f"document {i}: features contain NaN or infinity.", param="audio")
        A.append(a)
        T.append(t)
    return A, T


class HilbertClassifier:
    """One HILBERT (or baseline) model over documents of segment features.

    configuration: a name from learn/registry.py (hilbert, contrastive-moe, transfer, transfer-moe, ...);
    config: a HilbertConfig or a dict of dotted overrides; device: auto | cpu | cuda[:N] | mps; seed: the training seed."""

    def __init__(self, configuration: str = "hilbert", config: ConfigLike = None, device: str = "auto", seed: int = 0):
        self.configuration, self.config, self.device, self.seed = configuration, config, device, seed

    # --- learning ----------------------------------------------------------------------------
    def fit(self, audio, text, y, groups=None) -> "HilbertClassifier":
        from .data import encode_labels, label_order
        from .train import fit

        A, T = check_documents(audio, text)
        y = list(y)
        if len(y) != len(A):
            raise DataError(f"y: got {len(y)} labels for {len(A)} documents; give one label per document.", param="y")
        names = label_order(y)
        if len(names) < 2:
            raise DataError(f"y: every label is {names[0]!r}; a classifier needs at least two classes.", param="y")
        originals = {str(v): v for v in y}
        self.config_ = resolve_config(self.configuration, self.config, self.seed)
        grp = None if groups is None else np.unique(np.asarray(groups).astype(str), return_inverse=True)[1]
        res = fit(self.config_, A, T, encode_labels(y, names), len(names), groups=grp, device=self.device)
        self.classes_ = np.asarray([originals[n] for n in names])
        self.model_, self.best_epoch_, self.history_ = res.model, res.best_epoch, res.history
        self.calibration_ = res.calibration  # a calibration.Temperature with train.calibrate, else None
        self.n_features_ = (A[0].shape[1], T[0].shape[1])
        return self

    # --- inference ---------------------------------------------------------------------------
    def predict_proba(self, audio, text) -> np.ndarray:
        """(n, C) probabilities, temperature-scaled when the model was fitted with train.calibrate (`calibration_`)."""
        from .train import predict_proba

        return predict_proba(self._fitted(), *self._inputs(audio, text), temperature=self._temperature())

    def predict(self, audio, text) -> np.ndarray:
        return self.classes_[self.predict_proba(audio, text).argmax(1)]

    def explain(self, audio, text) -> list[dict]:
        """Per document: `proba` and, where the model has attention, per-segment weights alpha_a / alpha_t /
        alpha_j (each (S_i,), summing to 1), and `occlusion`: the drop in the predicted class's probability
        when each segment is left out (every configuration)."""
        from .train import explain

        return explain(self._fitted(), *self._inputs(audio, text), temperature=self._temperature())

    # --- model.pt ------------------------------------------------------------------------------
    def save(self, path) -> Path:
        from .checkpoint import save_checkpoint

        model = self._fitted()
        return save_checkpoint(path, model, config=self.config_, task="", label_names=[str(c) for c in self.classes_],
                               audio="", text="", d_audio=self.n_features_[0], d_text=self.n_features_[1],
                               fingerprints={}, extra={"best_epoch": self.best_epoch_, "classes": self.classes_.tolist()},
                               calibration=self.calibration_)

    @classmethod
    def load(cls, path, device: str = "auto") -> "HilbertClassifier":
        from .calibration import from_checkpoint
        from .checkpoint import load_checkpoint

        model, meta = load_checkpoint(path)
        config = HilbertConfig.from_dict(meta["config"], source=f"{path}: config")
        clf = cls(config.configuration, config, device, config.train.seed)
        clf.config_, clf.model_ = config, model.to(resolve_device(device))
        clf.classes_ = np.asarray(meta.get("extra", {}).get("classes") or meta["label_names"])
        clf.best_epoch_ = meta.get("extra", {}).get("best_epoch")
        clf.history_ = []
        clf.calibration_ = from_checkpoint(meta)
        clf.n_features_ = (meta["input_dims"]["d_audio"], meta["input_dims"]["d_text"])
        return clf

    # --- helpers -------------------------------------------------------------------------------
    def _fitted(self) -> torch.nn.Module:
        if not hasattr(self, "model_"):
            raise NotFittedError("HilbertClassifier: not fitted yet; call fit(audio, text, y) or HilbertClassifier.load(path).")
        return self.model_

    def _temperature(self) -> float:
        return 1.0 if self.calibration_ is None else self.calibration_.temperature

    def _inputs(self, audio, text):
        A, T = check_documents(audio, text)
        if (A[0].shape[1], T[0].shape[1]) != tuple(self.n_features_):
            raise DataError(f"audio, text: feature widths {A[0].shape[1]}/{T[0].shape[1]} differ from the "
                            f"{self.n_features_[0]}/{self.n_features_[1]} the model was fitted on.", param="audio")
        return A, T

    def __repr__(self) -> str:
        return f"HilbertClassifier(configuration={self.configuration!r}, device={self.device!r}, seed={self.seed})"
