"""The HILBERT model (METHOD.md §2–4, §6) and the transfer baselines (§7).

Inputs are frozen segment features A (B, S, d_a), T (B, S, d_t) and a (B, S) bool mask of valid
segments (audio and text segments are aligned one to one, so one mask serves both). Every module
is written so that padding never changes a document's output and runs under torch.func
(functional_call + vmap): masks are tensors, masked scores use a large finite negative instead of
-inf (a fully-masked row gives finite numbers, not NaN), and nothing branches on tensor values.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import HilbertConfig, ModelConfig
from ..errors import HilbertError

NEG = -1e9  # masked attention score; exp(NEG - max) underflows to exactly 0 in float32


class Projection(nn.Module):
    """x W -> LayerNorm -> dropout (METHOD.md §2 choice)."""

    def __init__(self, d_in: int, d: int, dropout: float):
        super().__init__()
        self.linear, self.norm, self.drop = nn.Linear(d_in, d), nn.LayerNorm(d), nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.norm(self.linear(x)))


class Attention(nn.Module):
    """Multi-head attention with a key padding mask. Written out (not nn.MultiheadAttention) so the
    masking is exact and the module has no fast paths that vmap cannot follow."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))
        self.drop = nn.Dropout(dropout)

    def forward(self, query, key, key_mask):
        b, s_q, d = query.shape
        h = self.heads

        def split(x):  # (B, S, d) -> (B, h, S, d/h)
            return x.reshape(b, x.shape[1], h, d // h).transpose(1, 2)

        q, k, v = split(self.q(query)), split(self.k(key)), split(self.v(key))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        scores = scores.masked_fill(~key_mask[:, None, None, :], NEG)
        z = torch.softmax(scores, dim=-1) @ v
        return self.drop(self.out(z.transpose(1, 2).reshape(b, s_q, d)))


class EncoderLayer(nn.Module):
    """One post-norm transformer encoder layer over segments: self-attention + feed-forward, residuals."""

    def __init__(self, d: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.attn = Attention(d, heads, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_mult * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask):
        x = self.norm1(x + self.attn(x, x, mask))
        return self.norm2(x + self.drop(self.ff(x)))


class AttentionPool(nn.Module):
    """α = softmax_s(wᵀ tanh(W H_s + b)) over valid segments, h = Σ_s α_s H_s. Returns (h, α)."""

    def __init__(self, d: int):
        super().__init__()
        self.proj, self.w = nn.Linear(d, d), nn.Linear(d, 1, bias=False)

    def forward(self, H, mask):
        scores = self.w(torch.tanh(self.proj(H))).squeeze(-1).masked_fill(~mask, NEG)
        alpha = torch.softmax(scores, dim=-1) * mask  # exact zeros on padding, all zeros if no segment
        return (alpha[..., None] * H).sum(1), alpha


def mlp(dims: list[int], dropout: float, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or last_activation:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class MoE(nn.Module):
    """K expert MLPs (in -> 32 -> 32) mixed by a softmax gate: y = Σ_k g_k(x) E_k(x) (METHOD.md §6).

    Expert weights are stacked (K, in, out) and applied with one einsum. `top_k` keeps only the k
    largest gate logits (sparse gating, a choice); None is the paper's dense gate.
    """

    def __init__(self, d_in: int, experts: int, hidden: tuple[int, ...], dropout: float, top_k: Optional[int] = None):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(d_in, experts)
        dims = [d_in, *hidden]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1 / math.sqrt(a)  # nn.Linear's default initialisation, per expert
            self.weights.append(nn.Parameter(torch.empty(experts, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(experts, b).uniform_(-bound, bound)))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        logits = self.gate(x)  # (B, K)
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            kth = logits.topk(self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, NEG)
        gates = torch.softmax(logits, dim=-1)
        h = self.drop(F.relu(torch.einsum("bi,kio->bko", x, self.weights[0]) + self.biases[0]))  # (B, K, h1)
        for i in range(1, len(self.weights)):  # index, never slice: a sliced ParameterList re-wraps
            # its tensors as new leaves, which would cut the graph under torch.func.functional_call
            h = self.drop(F.relu(torch.einsum("bki,kio->bko", h, self.weights[i]) + self.biases[i]))
        return (gates[..., None] * h).sum(1), gates


def head(d_in: int, n_classes: int, cfg: ModelConfig) -> nn.Sequential:
    """Classification head 32 -> 32 -> 16 -> C (softmax lives in the loss / predict_proba)."""
    return mlp([d_in, *cfg.head_hidden, n_classes], cfg.dropout, last_activation=False)


class HilbertModel(nn.Module):
    """Configurations `hilbert` and `contrastive-moe`: the trained encoders of §2–3, projector g, MoE, head."""

    def __init__(self, config: HilbertConfig, d_audio: int, d_text: int, n_classes: int):
        super().__init__()
        m = config.model
        d = m.d
        self.proj_a, self.proj_t = Projection(d_audio, d, m.dropout), Projection(d_text, d, m.dropout)
        self.enc_a = EncoderLayer(d, m.heads, m.ff_mult, m.dropout)
        self.enc_t = EncoderLayer(d, m.heads, m.ff_mult, m.dropout)
        self.pool_a, self.pool_t = AttentionPool(d), AttentionPool(d)
        self.cross_at = Attention(d, m.heads, m.dropout)  # Q = audio, K = V = text
        self.cross_ta = Attention(d, m.heads, m.dropout)  # Q = text, K = V = audio
        self.fuse = Projection(2 * d, d, m.dropout)  # [Z_a→t ; Z_t→a] -> d (choice)
        self.enc_j = EncoderLayer(d, m.heads, m.ff_mult, m.dropout)
        self.pool_j = AttentionPool(d)
        self.g = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, m.d_z))  # shared projector
        self.moe = MoE(3 * d, m.experts, m.expert_hidden, m.dropout, m.top_k)
        self.head = head(m.expert_hidden[-1], n_classes, m)

    def forward(self, A, T, mask):
        H_a = self.enc_a(self.proj_a(A), mask)
        H_t = self.enc_t(self.proj_t(T), mask)
        h_a, alpha_a = self.pool_a(H_a, mask)
        h_t, alpha_t = self.pool_t(H_t, mask)
        Z = torch.cat([self.cross_at(H_a, H_t, mask), self.cross_ta(H_t, H_a, mask)], dim=-1)
        H_j = self.enc_j(self.fuse(Z), mask)
        h_j, alpha_j = self.pool_j(H_j, mask)
        y, gates = self.moe(torch.cat([h_a, h_t, h_j], dim=-1))
        return {
            "logits": self.head(y),
            "h_a": h_a, "h_t": h_t, "h_j": h_j,
            "z_a": self.g(h_a), "z_t": self.g(h_t), "z_j": self.g(h_j),
            "alpha_a": alpha_a, "alpha_t": alpha_t, "alpha_j": alpha_j,
            "gates": gates,
        }


def masked_mean(X, mask):
    m = mask.to(X.dtype)[..., None]
    return (X * m).sum(1) / m.sum(1).clamp_min(1.0)


class TransferModel(nn.Module):
    """`transfer`, `transfer-moe`, `audio-only`, `text-only`: masked mean of the frozen segment
    features -> LayerNorm per modality (choice: keeps a 1024-d audio vector from swamping text)
    -> one MLP in -> 32 -> 32 (transfer) or the MoE (transfer-moe) -> head."""

    def __init__(self, config: HilbertConfig, d_audio: int, d_text: int, n_classes: int):
        super().__init__()
        m = config.model
        self.modalities = tuple(config.spec["modalities"])
        dims = {"audio": d_audio, "text": d_text}
        self.norms = nn.ModuleDict({k: nn.LayerNorm(dims[k]) for k in self.modalities})
        d_in = sum(dims[k] for k in self.modalities)
        self.drop = nn.Dropout(m.dropout)
        if config.spec["moe"]:
            self.moe = MoE(d_in, m.experts, m.expert_hidden, m.dropout, m.top_k)
        else:
            self.mlp = mlp([d_in, *m.expert_hidden], m.dropout, last_activation=True)
        self.head = head(m.expert_hidden[-1], n_classes, m)

    def forward(self, A, T, mask):
        feats = {"audio": A, "text": T}
        x = self.drop(torch.cat([self.norms[k](masked_mean(feats[k], mask)) for k in self.modalities], dim=-1))
        out = {}
        if hasattr(self, "moe"):
            y, out["gates"] = self.moe(x)
        else:
            y = self.mlp(x)
        out["logits"] = self.head(y)
        return out


def build_model(config: HilbertConfig, d_audio: int, d_text: int, n_classes: int) -> nn.Module:
    """The model for `config.configuration`, sized for the given feature widths and classes."""
    if n_classes < 2:
        raise HilbertError(f"a task needs at least 2 classes to train a classifier, got {n_classes}.")
    if d_audio < 1 or d_text < 1:
        raise HilbertError(f"feature widths must be positive, got d_audio={d_audio}, d_text={d_text}.")
    klass = HilbertModel if config.uses_encoders else TransferModel
    return klass(config, int(d_audio), int(d_text), int(n_classes))
