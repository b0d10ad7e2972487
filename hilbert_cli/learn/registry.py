"""The extension points of the learning code: configurations and auxiliary losses, one entry each.

A new configuration is one `Configuration` entry here plus its model class; a new auxiliary loss is one
`AuxLoss` entry plus its function in losses.py and its weight in `LossConfig`. Nothing outside this
module compares configuration or loss names: everything else reads the entries' fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from ..errors import ConfigError
from . import losses as L
from .model import HilbertModel, TransferModel


@dataclass(frozen=True)
class AuxLoss:
    """An auxiliary loss: fn(outputs, loss_config, mask) -> scalar, weighted by loss_config.<weight>."""
    name: str
    weight: str  # the LossConfig field holding its λ
    column: str  # its column in the loss history (model.losses.csv)
    fn: Callable
    summary: str


@dataclass(frozen=True)
class Configuration:
    name: str
    display: str  # as in the paper's tables
    model: type  # the FoldModel class to build
    modalities: tuple[str, ...] = ("audio", "text")
    moe: bool = True
    default_losses: tuple[str, ...] = ()  # auxiliary losses in use unless the config says otherwise
    loss_overrides: dict = field(default_factory=dict)  # loss name -> AuxLoss replacing the registry's entry
    segment_weight: str = "uniform"  # what predict's segment weight is: "attention" (α_j) or "uniform" (1/S)
    paper: bool = False  # one of the paper's four compared configurations (evaluate's default grid)
    backbones: tuple[str, str] | None = None  # (audio, text) it always embeds with, whatever --audio / --text say

    @property
    def uses_encoders(self) -> bool:
        return self.model is HilbertModel

    @property
    def allowed_losses(self) -> tuple[str, ...]:
        return tuple(LOSSES) if self.uses_encoders else ()

    def loss(self, name: str) -> AuxLoss:
        return self.loss_overrides.get(name) or LOSSES[name]

    def pairs(self, requested) -> list[tuple[str, str]]:
        """The (audio, text) backbone pairs this configuration runs on when `requested` are asked for: its own
        pair when it has one (a pre-trained audio-text model such as CLAP), else the requested ones."""
        return [self.backbones] if self.backbones is not None else [tuple(p) for p in requested]


def _dual(out, lc, mask):
    return L.dual_contrastive_loss(out["z_a"], out["z_t"], out["z_j"], lc.temperature, mask)


def _audio_text(out, lc, mask):
    return L.audio_text_contrastive_loss(out["z_a"], out["z_t"], lc.temperature, mask)


def _cka(out, lc, mask):
    if lc.cka_level == "segment":
        return L.segment_cka_loss(out["H_a"], out["H_t"], out["H_j"], out["segment_mask"], mask)
    return L.cka_loss(out["z_a"], out["z_t"], out["z_j"], mask)


def _mi(out, lc, mask):
    return L.mi_loss(out["z_a"], out["z_t"], out["z_j"], lc.temperature_mi, lc.mi_mode, mask)


LOSSES: dict[str, AuxLoss] = {
    "contrastive": AuxLoss("contrastive", "lambda_con", "con", _dual, "dual NT-Xent of z_j against z_a and z_t"),
    "cka": AuxLoss("cka", "lambda_cka", "cka", _cka, "1 - linear CKA of each modality with the joint"),
    "mi": AuxLoss("mi", "lambda_mi", "mi", _mi, "InfoNCE mutual information: balance and/or maximise (loss.mi_mode)"),
}
LOSS_COLUMNS = tuple(loss.column for loss in LOSSES.values())

CONFIGURATIONS: dict[str, Configuration] = {c.name: c for c in (
    Configuration("transfer", "Transfer (baseline)", TransferModel, moe=False, paper=True),
    Configuration("transfer-moe", "Transfer + MoE", TransferModel, paper=True),
    Configuration("contrastive-moe", "Contrastive + MoE", HilbertModel, default_losses=("contrastive",),
                  loss_overrides={"contrastive": AuxLoss("contrastive", "lambda_con", "con", _audio_text,
                                                         "conventional audio-text NT-Xent")},
                  segment_weight="attention", paper=True),
    Configuration("hilbert", "HILBERT (DualC + MoE)", HilbertModel, default_losses=("contrastive", "cka", "mi"),
                  segment_weight="attention", paper=True),
    Configuration("audio-only", "Audio only (transfer)", TransferModel, modalities=("audio",), moe=False),
    Configuration("text-only", "Text only (transfer)", TransferModel, modalities=("text",), moe=False),
    # the paper's CLAP-LAION row (Tables 2-3): pre-trained audio-text CLAP embeddings, pooled, transfer classifier
    Configuration("clap", "CLAP-LAION", TransferModel, moe=False, backbones=("clap", "clap")),
)}
PAPER_CONFIGURATIONS = tuple(name for name, c in CONFIGURATIONS.items() if c.paper)
REFERENCE = "hilbert"  # the configuration every other one is compared against, and the one ablations vary


def configuration(name: str, param: str = "configuration") -> Configuration:
    """The registry entry for `name`; an unknown name lists the valid ones."""
    try:
        return CONFIGURATIONS[name]
    except KeyError:
        raise ConfigError(f"{param}: unknown configuration {name!r}; valid: {', '.join(CONFIGURATIONS)}.",
                          param=param) from None


def loss_names(spec, param: str = "loss.losses") -> list[str]:
    """'contrastive,cka' / a list / 'none' -> registered loss names in canonical order."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    items = [str(s).strip().lower() for s in items if str(s).strip() and str(s).strip().lower() != "none"]
    bad = [s for s in items if s not in LOSSES]
    if bad:
        raise ConfigError(f"{param}: unknown loss {bad[0]!r}; valid: {', '.join(LOSSES)} (or none).", param=param)
    return [name for name in LOSSES if name in items]


def aux_terms(spec: Configuration, active: tuple[str, ...]) -> list[AuxLoss]:
    return [spec.loss(name) for name in active]


def display_name(variant: str) -> Optional[str]:
    c = CONFIGURATIONS.get(variant)
    return None if c is None else c.display
