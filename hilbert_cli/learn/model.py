"""The HILBERT model (METHOD.md §2–4, §6) and the transfer baselines (§7), each written once with a
leading fold dimension (layers.py): `hilbert train` builds F = 1, cross-validation F = k.

Inputs are frozen segment features A (F, B, S, d_a), T (F, B, S, d_t) and a (F, B, S) bool mask of
valid segments (audio and text segments are aligned one to one, so one mask serves both). For
convenience, 3-D inputs (B, S, d) run a one-fold model and give outputs without the fold axis.
Padding never changes a document's output.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn as nn

from ..errors import ConfigError, DataError
from .layers import (AttentionPool, Dropout, EncoderLayer, FoldModule, FoldNoise, InteractionPool, LayerNorm,
                     MLP, MoE, PositionPool, Projection, Attention, masked_mean)

if TYPE_CHECKING:
    from .config import HilbertConfig


class FoldModel(nn.Module):
    """What every model shares: F folds, per-fold initialisation and noise, input standardisation, 3-D
    convenience inputs.

    Inputs are standardised per feature with each fold's own training statistics (buffers, set by the
    trainer from the documents the fold fits on, as scikit-learn's StandardScaler would): frozen features
    carry a large common mean and very unequal scales, which swamp a small label signal otherwise. `folded`
    gets the raw features and applies the statistics where they are cheapest: inside the first linear
    map (`Linear(x, shift, scale)`) or after a mean, both linear in x."""

    def __init__(self, folds: int, d_audio: int, d_text: int):
        super().__init__()
        self.folds = folds
        self.register_buffer("audio_mean", torch.zeros(folds, d_audio))
        self.register_buffer("audio_scale", torch.ones(folds, d_audio))
        self.register_buffer("text_mean", torch.zeros(folds, d_text))
        self.register_buffer("text_scale", torch.ones(folds, d_text))

    @torch.no_grad()
    def set_standardisation(self, audio_mean, audio_scale, text_mean, text_scale) -> None:
        """(F, d) statistics per fold; scales below 1e-6 count as 1 (a constant feature stays constant)."""
        for name, v in (("audio_mean", audio_mean), ("audio_scale", audio_scale), ("text_mean", text_mean),
                        ("text_scale", text_scale)):
            v = torch.as_tensor(v, dtype=getattr(self, name).dtype, device=getattr(self, name).device)
            if name.endswith("scale"):
                v = torch.where(v > 1e-6, v, torch.ones_like(v))
            getattr(self, name).copy_(v)

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        """Initialise fold f from generators[f], module by module in a fixed order (CPU generators)."""
        if len(generators) != self.folds:
            raise ConfigError(f"reset_parameters: need one generator per fold ({self.folds}), got {len(generators)}.")
        for m in self.modules():
            if isinstance(m, FoldModule):
                m.reset(generators)

    def set_noise(self, noise: FoldNoise | None) -> None:
        for m in self.modules():
            if isinstance(m, Dropout):
                m.noise = noise

    def forward(self, A, T, mask) -> dict:
        if A.dim() == 3:  # one fold, no fold axis
            out = self.forward(A.unsqueeze(0), T.unsqueeze(0), mask.unsqueeze(0))
            return {k: v.squeeze(0) for k, v in out.items()}
        return self.folded(A, T, mask)

    def standardise(self, modality: str, x):
        """(F, ..., d) features of `modality` ("audio" or "text") standardised with each fold's statistics."""
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        mean, scale = getattr(self, f"{modality}_mean"), getattr(self, f"{modality}_scale")
        return (x - mean.view(shape)) / scale.view(shape)

    def folded(self, A, T, mask) -> dict:  # pragma: no cover - every model defines it
        raise NotImplementedError


def classifier_head(folds: int, d_in: int, n_classes: int, m) -> MLP:
    """Classification head 32 -> 32 -> 16 -> C (softmax lives in the loss / predict_proba)."""
    return MLP(folds, [d_in, *m.head_hidden, n_classes], m.dropout, last_activation=False)


class HilbertModel(FoldModel):
    """`hilbert` and `contrastive-moe`: the trained encoders of §2–3, projector g, MoE, head.

    Joint encoder (`model.fusion`): "cross" is METHOD.md §3 as written, [Z_a→t ; Z_t→a] projected to d;
    "residual" keeps each modality's own states beside what it attends to in the other,
    [LN(H_a + Z_a→t) ; LN(H_t + Z_t→a)], so the joint sequence keeps segment identity; "aligned" also
    adds the per-segment product H_a ⊙ H_t of the aligned audio and text segment (README, "Method").
    Attention pooling scores (`model.pool_scores`): "segment" (the default) scores each segment on its own projected
    features (Xa, Xt, and Xa + Xt for the joint pool) and pools the contextual states, so α says which segments'
    own content mattered; "context" is METHOD.md §2 as written, each segment scored on the state it pools (after
    self-attention), which can carry any segment's content (README, "Method").
    Second-order poolings, each appended to the MoE's input [h_a; h_t; h_j; ...] when switched on:
    `model.interaction` r > 0 adds h_x, the rank-r pooled product of each segment's aligned projected audio and text
    (X_a, X_t; layers.InteractionPool); `model.positions` n > 0 adds h_p: `position_rank` content detectors of the
    projected segments (X_a, X_t), each a softmax over the document's segments, pooling n Fourier frequencies of
    the segments' relative positions: where each detector's content sits (layers.PositionPool)."""

    def __init__(self, config: "HilbertConfig", d_audio: int, d_text: int, n_classes: int, folds: int = 1):
        super().__init__(folds, d_audio, d_text)
        m = config.model
        d, F_ = m.d, folds
        self.fusion = m.fusion
        self.score_own = m.pool_scores == "segment"  # pools score each segment's own features, before self-attention
        self.proj_a, self.proj_t = Projection(F_, d_audio, d, m.dropout), Projection(F_, d_text, d, m.dropout)
        self.enc_a = EncoderLayer(F_, d, m.heads, m.ff_mult, m.dropout)
        self.enc_t = EncoderLayer(F_, d, m.heads, m.ff_mult, m.dropout)
        self.pool_a, self.pool_t = AttentionPool(F_, d), AttentionPool(F_, d)
        self.cross_at = Attention(F_, d, m.heads, m.dropout)  # Q = audio, K = V = text
        self.cross_ta = Attention(F_, d, m.heads, m.dropout)  # Q = text, K = V = audio
        if self.fusion != "cross":
            self.norm_at, self.norm_ta = LayerNorm(F_, d), LayerNorm(F_, d)
        n_parts = 3 if self.fusion == "aligned" else 2
        self.fuse = Projection(F_, n_parts * d, d, m.dropout)
        self.enc_j = EncoderLayer(F_, d, m.heads, m.ff_mult, m.dropout)
        self.pool_j = AttentionPool(F_, d)
        self.g = MLP(F_, [d, d, m.d_z], 0.0, last_activation=False)  # shared projector
        self.interaction = InteractionPool(F_, d, m.interaction) if m.interaction else None
        self.pos_pool = PositionPool(F_, d, m.position_rank, m.positions) if m.positions else None
        extra = m.interaction + (self.pos_pool.width if self.pos_pool is not None else 0)
        self.moe = MoE(F_, 3 * d + extra, m.experts, m.expert_hidden, m.dropout, m.top_k)
        self.head = classifier_head(F_, m.expert_hidden[-1], n_classes, m)

    def folded(self, A, T, mask):
        Xa = self.proj_a(A, self.audio_mean, self.audio_scale)  # standardised inside the projection
        Xt = self.proj_t(T, self.text_mean, self.text_scale)
        H_a, H_t = self.enc_a(Xa, mask), self.enc_t(Xt, mask)
        h_a, alpha_a = self.pool_a(H_a, mask, Xa if self.score_own else None)
        h_t, alpha_t = self.pool_t(H_t, mask, Xt if self.score_own else None)
        Z_at, Z_ta = self.cross_at(H_a, H_t, mask), self.cross_ta(H_t, H_a, mask)
        if self.fusion == "cross":
            parts = [Z_at, Z_ta]
        else:
            parts = [self.norm_at(H_a + Z_at), self.norm_ta(H_t + Z_ta)]
            if self.fusion == "aligned":
                parts.append(H_a * H_t)
        H_j = self.enc_j(self.fuse(torch.cat(parts, dim=-1)), mask)
        h_j, alpha_j = self.pool_j(H_j, mask, Xa + Xt if self.score_own else None)
        pooled = [h_a, h_t, h_j]
        if self.interaction is not None:
            pooled.append(self.interaction(Xa, Xt, mask))
        if self.pos_pool is not None:
            pooled.append(self.pos_pool(Xa, Xt, mask))
        y, gates = self.moe(torch.cat(pooled, dim=-1))
        return {
            "logits": self.head(y),
            "h_a": h_a, "h_t": h_t, "h_j": h_j,
            "z_a": self.g(h_a), "z_t": self.g(h_t), "z_j": self.g(h_j),
            "alpha_a": alpha_a, "alpha_t": alpha_t, "alpha_j": alpha_j,
            "gates": gates,
            "H_a": H_a, "H_t": H_t, "H_j": H_j, "segment_mask": mask,
        }


class TransferModel(FoldModel):
    """`transfer`, `transfer-moe`, `audio-only`, `text-only`, `clap`: masked mean of the frozen segment features
    -> LayerNorm per modality (choice: keeps a 1024-d audio vector from swamping text) -> one MLP
    in -> 32 -> 32 (transfer) or the MoE (transfer-moe) -> head."""

    def __init__(self, config: "HilbertConfig", d_audio: int, d_text: int, n_classes: int, folds: int = 1):
        super().__init__(folds, d_audio, d_text)
        m, spec = config.model, config.spec
        self.modalities = tuple(spec.modalities)
        dims = {"audio": d_audio, "text": d_text}
        self.norms = nn.ModuleDict({k: LayerNorm(folds, dims[k]) for k in self.modalities})
        d_in = sum(dims[k] for k in self.modalities)
        self.drop = Dropout(m.dropout, seq=False)
        self.moe = MoE(folds, d_in, m.experts, m.expert_hidden, m.dropout, m.top_k) if spec.moe else None
        self.mlp = None if spec.moe else MLP(folds, [d_in, *m.expert_hidden], m.dropout, last_activation=True)
        self.head = classifier_head(folds, m.expert_hidden[-1], n_classes, m)

    def folded(self, A, T, mask):
        feats = {"audio": A, "text": T}
        has = mask.any(-1, keepdim=True).to(A.dtype)  # a document without segments pools to 0, as before
        x = self.drop(torch.cat([self.norms[k](self.standardise(k, masked_mean(feats[k], mask)) * has)
                                 for k in self.modalities], dim=-1))
        out = {}
        if self.moe is not None:
            y, out["gates"] = self.moe(x)
        else:
            y = self.mlp(x)
        out["logits"] = self.head(y)
        return out


def build_model(config: "HilbertConfig", d_audio: int, d_text: int, n_classes: int, folds: int = 1,
                seeds: Sequence[int] | None = None) -> FoldModel:
    """The model of `config.configuration` for F = `folds`, fold f initialised from seeds[f]
    (default: every fold from config.train.seed), on the CPU (move it with .to(device))."""
    if n_classes < 2:
        raise DataError(f"a task needs at least 2 classes to train a classifier, got {n_classes}.")
    if d_audio < 1 or d_text < 1:
        raise DataError(f"feature widths must be positive, got d_audio={d_audio}, d_text={d_text}.")
    model = config.spec.model(config, int(d_audio), int(d_text), int(n_classes), int(folds))
    seeds = [config.train.seed] * folds if seeds is None else list(seeds)
    model.reset_parameters([torch.Generator().manual_seed(int(s)) for s in seeds])
    return model
