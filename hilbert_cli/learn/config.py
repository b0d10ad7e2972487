"""Typed training configuration: model sizes, loss weights, training settings (METHOD.md §2–7).

A `HilbertConfig` is built from defaults, then a YAML file (`--config FILE`), then command-line
overrides, in that order. Its resolved form (`to_dict()`) is printed, saved in model.pt and written
next to the model, so that a model can always be rebuilt and a run repeated.

Defaults are chosen for the data this tool is for: dozens to hundreds of documents. They are small
(d = 64) and regularised (dropout, weight decay, early stopping); the paper's fixed sizes (d_z = 128,
8 experts of 32-32 units, head 32-16-C) are kept as they are.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from ..errors import ConfigError
from .registry import LOSSES, Configuration, aux_terms, configuration, loss_names
from .registry import CONFIGURATIONS, PAPER_CONFIGURATIONS  # noqa: F401 (re-exported: the names callers know)

AUX_LOSSES = tuple(LOSSES)  # the auxiliary losses' names, in canonical order

FUSIONS = ("cross", "residual", "aligned")  # the joint encoder's input (model.HilbertModel)
POOL_SCORES = ("context", "segment")  # what the attention poolings score (model.HilbertModel)
MI_MODES = ("balance", "maximize", "both")  # the MI term's readings (losses.mi_loss)
CKA_LEVELS = ("document", "segment")  # where CKA is measured (losses.cka_loss / segment_cka_loss)
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class ModelConfig:
    d: int = 64  # width of the trained document encoders (choice: small for small data)
    heads: int = 4  # attention heads in every attention layer; must divide d
    dropout: float = 0.2  # on projections, attention outputs and MLP hidden layers
    ff_mult: int = 2  # transformer feed-forward width = ff_mult * d
    d_z: int = 128  # shared projector output (paper: 64/128/256 made no difference)
    experts: int = 8  # MoE experts (paper: 8)
    expert_hidden: tuple[int, ...] = (32, 32)  # each expert: 3d -> 32 -> 32 (paper)
    top_k: Optional[int] = None  # None = dense softmax gate (paper); k = keep the k largest gates
    head_hidden: tuple[int, ...] = (32, 16)  # head: 32 -> 32 -> 16 -> C (paper)
    fusion: str = "residual"  # joint encoder input: cross (METHOD.md §3), residual, aligned (README, "Method")
    pool_scores: str = "segment"  # attention pooling scores read: segment (own features; README, "Method") or context (METHOD.md §2)
    positions: int = 4  # Fourier frequencies of the position pooling h_p (0 = none; README, "Method")
    position_rank: int = 4  # content detectors of the position pooling
    interaction: int = 0  # rank of the aligned audio-text interaction pooling h_x (0 = none; README, "Method")


@dataclass
class LossConfig:
    losses: Optional[list[str]] = None  # auxiliary losses in use; None = the configuration's default
    # The paper gives no λ or τ; these were chosen on the demo corpus and then the learning task suite's
    # tuning seed (README: "Defaults").
    lambda_con: float = 0.1
    lambda_cka: float = 0.1
    lambda_mi: float = 0.1
    temperature: float = 0.5  # τ of the contrastive losses
    temperature_mi: float = 0.5  # τ_mi of the InfoNCE critic
    mi_mode: str = "balance"  # balance |Î_a − Î_t|, maximize −(Î_a + Î_t), or both (losses.mi_loss)
    cka_level: str = "document"  # CKA of the z of a batch's documents (METHOD.md §5), or of its segments' states


@dataclass
class TrainConfig:
    lr: float = 1e-3  # AdamW learning rate (README: "Defaults")
    weight_decay: float = 1e-2
    epochs: int = 60  # epochs to train (README, "Method": the protocol)
    batch_size: int = 16  # small data needs optimiser steps: tens of documents give only a few per epoch
    patience: int = 20  # epochs without a better validation loss before stopping
    val_fraction: float = 0.0  # inner validation split for early stopping (0 = no split: the epochs run out, the last best training loss kept)
    class_weights: bool = False  # inverse-frequency class weights in the cross-entropy (README, "Method": off by default)
    standardize: bool = True  # standardise every input feature with the training documents' mean and sd
    min_epochs: int = 1  # no epoch before this one is kept as the best (early stopping cannot end sooner)
    smoothing: float = 0.0  # early stopping follows an exponential moving average of the validation loss (0 = raw)
    warmup_epochs: int = 3  # learning rate rises linearly over these epochs
    lr_schedule: str = "cosine"  # after warm-up: constant, or cosine decay to 0 at `epochs`
    # temperature scaling after training (learn/calibration.py), fitted on held-out documents: the validation split,
    # or with val_fraction 0 a calibration split of calibration_fraction, held out of training
    calibrate: bool = False
    calibration_fraction: float = 0.2
    seed: int = 0


SECTIONS = {"model": ModelConfig, "loss": LossConfig, "train": TrainConfig}


@dataclass
class HilbertConfig:
    configuration: str = "hilbert"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        self.validate()

    # --- derived ---------------------------------------------------------------------------
    @property
    def spec(self) -> Configuration:
        """The configuration's registry entry (learn/registry.py)."""
        return configuration(self.configuration)

    @property
    def uses_encoders(self) -> bool:
        return self.spec.uses_encoders

    @property
    def active_losses(self) -> tuple[str, ...]:
        """The auxiliary losses in use, in canonical order."""
        chosen = self.spec.default_losses if self.loss.losses is None else self.loss.losses
        return tuple(name for name in LOSSES if name in chosen)

    @property
    def aux_terms(self) -> list:
        """The AuxLoss entries in use (for contrastive-moe, "contrastive" is the audio–text NT-Xent)."""
        return aux_terms(self.spec, self.active_losses)

    # --- checks ----------------------------------------------------------------------------
    def validate(self) -> None:
        configuration(self.configuration)  # raises for an unknown name, listing the valid ones
        m, l, t = self.model, self.loss, self.train
        _positive("model.d", m.d)
        _positive("model.heads", m.heads)
        if m.d % m.heads:
            raise ConfigError(f"model.heads: {m.heads} does not divide model.d = {m.d}; choose heads that divide d.")
        if not 0.0 <= m.dropout < 1.0:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {m.dropout}.")
        for name in ("ff_mult", "d_z", "experts"):
            _positive(f"model.{name}", getattr(m, name))
        m.expert_hidden = _int_tuple("model.expert_hidden", m.expert_hidden)
        m.head_hidden = _int_tuple("model.head_hidden", m.head_hidden)
        if m.top_k is not None:
            m.top_k = _coerce_int("model.top_k", m.top_k)
        if m.top_k is not None and not (1 <= m.top_k <= m.experts):
            raise ConfigError(f"model.top_k: must be between 1 and experts = {m.experts} (or null for dense), got {m.top_k}.")
        if l.losses is not None:
            l.losses = loss_names(l.losses)
            if l.losses and not self.uses_encoders:
                raise ConfigError(
                    f"loss.losses: configuration {self.configuration!r} has no trained encoders, so it takes no "
                    f"auxiliary losses; use configuration hilbert or contrastive-moe, or set losses to []."
                )
        for name in ("lambda_con", "lambda_cka", "lambda_mi"):
            if getattr(l, name) < 0:
                raise ConfigError(f"loss.{name}: must be >= 0, got {getattr(l, name)}.")
        for name in ("temperature", "temperature_mi"):
            if not getattr(l, name) > 0:
                raise ConfigError(f"loss.{name}: must be > 0, got {getattr(l, name)}.")
        _choice("model.fusion", m.fusion, FUSIONS)
        _choice("model.pool_scores", m.pool_scores, POOL_SCORES)
        _choice("loss.mi_mode", l.mi_mode, MI_MODES)
        _choice("loss.cka_level", l.cka_level, CKA_LEVELS)
        _choice("train.lr_schedule", t.lr_schedule, LR_SCHEDULES)
        if not isinstance(m.position_rank, int) or m.position_rank < 1:
            raise ConfigError(f"model.position_rank: must be an integer >= 1, got {m.position_rank!r}.", param="model.position_rank")
        for name in ("positions", "interaction"):
            if not isinstance(getattr(m, name), int) or getattr(m, name) < 0:
                raise ConfigError(f"model.{name}: must be an integer >= 0, got {getattr(m, name)!r}.", param=f"model.{name}")
        for name in ("min_epochs", "warmup_epochs"):
            if not isinstance(getattr(t, name), int) or getattr(t, name) < 0:
                raise ConfigError(f"train.{name}: must be an integer >= 0, got {getattr(t, name)!r}.", param=f"train.{name}")
        if not 0.0 <= t.smoothing < 1.0:
            raise ConfigError(f"train.smoothing: must be in [0, 1), got {t.smoothing}.", param="train.smoothing")
        if not t.lr > 0:
            raise ConfigError(f"train.lr: must be > 0, got {t.lr}.")
        if t.weight_decay < 0:
            raise ConfigError(f"train.weight_decay: must be >= 0, got {t.weight_decay}.")
        for name in ("epochs", "batch_size", "patience"):
            _positive(f"train.{name}", getattr(t, name))
        if not 0.0 <= t.val_fraction < 1.0:
            raise ConfigError(f"train.val_fraction: must be in [0, 1), got {t.val_fraction}.")
        if not 0.0 < t.calibration_fraction < 1.0:
            raise ConfigError(f"train.calibration_fraction: must be in (0, 1), got {t.calibration_fraction}.",
                              param="train.calibration_fraction")

    # --- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain types (losses filled in), loadable by `from_dict`."""
        d = dataclasses.asdict(self)
        d["loss"]["losses"] = list(self.active_losses)
        d["model"]["expert_hidden"] = list(self.model.expert_hidden)
        d["model"]["head_hidden"] = list(self.model.head_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, source: str = "config") -> "HilbertConfig":
        d = dict(d or {})
        valid = ["configuration", *SECTIONS]
        for key in d:
            if key not in valid:
                raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(valid)}.")
        sections = {}
        for name, klass in SECTIONS.items():
            sub = d.get(name) or {}
            if not isinstance(sub, dict):
                raise ConfigError(f"{source}: {name!r} must be a mapping of settings, got {type(sub).__name__}.")
            names = [f.name for f in fields(klass)]
            for key in sub:
                if key not in names:
                    raise ConfigError(f"{source}: unknown key {name}.{key}; valid keys in {name}: {', '.join(names)}.")
            sections[name] = klass(**{k: _coerce(klass, k, v, f"{source}: {name}.{k}") for k, v in sub.items()})
        return cls(configuration=str(d.get("configuration", "hilbert")), **sections)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **overrides: Any) -> "HilbertConfig":
        """A copy with overrides given as 'section.key' or top-level names, e.g. {'train.lr': 1e-3}."""
        return apply_overrides(self, overrides)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> HilbertConfig:
    """Defaults <- YAML file (if given) <- overrides ({'train.epochs': 50, 'configuration': 'transfer'})."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"--config {p}: no such file; give the path of a YAML config file.") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"--config {p}: not valid YAML ({str(e).splitlines()[0]}); fix the file.") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--config {p}: must be a YAML mapping (configuration:, model:, loss:, train:).")
    cfg = HilbertConfig.from_dict(data, source=f"--config {path}" if path else "config")
    return apply_overrides(cfg, overrides or {})


def apply_overrides(cfg: HilbertConfig, overrides: dict[str, Any]) -> HilbertConfig:
    d = cfg.to_dict()
    if cfg.loss.losses is None:  # keep "default for the configuration" if the configuration changes
        d["loss"]["losses"] = None
    for key, value in overrides.items():
        if value is None:
            continue
        if "." in key:
            section, name = key.split(".", 1)
            if section not in SECTIONS:
                raise ConfigError(f"option {key}: unknown section {section!r}; valid: {', '.join(SECTIONS)}.")
            d[section][name] = value
        else:
            d[key] = value
    return HilbertConfig.from_dict(d, source="option")


def _coerce(klass, key: str, value: Any, where: str) -> Any:
    """YAML/CLI values to the field's type (ints stay ints, '1e-3' becomes a float)."""
    default = next(f for f in fields(klass) if f.name == key).default
    if value is None or isinstance(default, (tuple, list)) or default is None or isinstance(default, bool) and isinstance(value, bool):
        return value
    try:
        if isinstance(default, bool):
            if str(value).lower() in ("true", "yes", "on", "1"):
                return True
            if str(value).lower() in ("false", "no", "off", "0"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)  # 1.5 is no count: never truncated
            return int(value)
        return type(default)(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a {type(default).__name__}, got {value!r}.") from None


def _coerce_int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected an integer, got {value!r}.") from None


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: must be one of {', '.join(allowed)}, got {value!r}.", param=name)


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: must be a positive integer, got {value!r}.")


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: must be a list of positive integers, got {value!r}.") from None
    if not out or any(v < 1 for v in out):
        raise ConfigError(f"{name}: must be a non-empty list of positive integers, got {value!r}.")
    return out
