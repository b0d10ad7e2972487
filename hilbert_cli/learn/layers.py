"""Layers with a leading fold dimension: F independent models in one module.

Every parameter is shaped (F, ...) and every activation (F, B, ...): `hilbert train` runs F = 1, and
cross-validation trains its k folds as F = k in the same wide products (one `bmm` per linear layer).
Nothing here mixes folds: fold f's outputs depend only on fold f's parameters, inputs and noise.

Randomness is per fold, too. Initialisation draws fold f's weights from fold f's generator
(`reset_parameters(generators)`, module by module, as nn.Linear would), and dropout draws fold f's
mask from fold f's generator in the shape of fold f's own batch (`FoldNoise`), so a fold trained
among others sees exactly the noise it would see trained alone with the same seed.

Masked scores use a large finite negative instead of -inf (a fully-masked row stays finite), and
nothing branches on tensor values.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e9  # masked attention score; exp(NEG - max) underflows to exactly 0 in float32


class FoldNoise:
    """Dropout randomness for one training step: a generator per fold, and each fold's own batch shape
    (n[f] documents, the longest of them s[f] segments). Activations are padded to the widest fold."""

    def __init__(self, generators: Sequence[torch.Generator], n: Sequence[int], s: Sequence[int]):
        self.generators, self.n, self.s = list(generators), [int(v) for v in n], [int(v) for v in s]

    def mask(self, x: torch.Tensor, p: float, seq: bool) -> torch.Tensor:
        """A keep-mask scaled by 1/(1-p), shaped like x; fold f's part drawn as (n[f], s[f] or x.shape[2], ...)."""
        rest = tuple(x.shape[2:])
        full = all(n == x.shape[1] and (not seq or s == x.shape[2]) for n, s in zip(self.n, self.s))
        keep = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
        for f, g in enumerate(self.generators):
            if self.n[f] == 0:  # no documents of this fold in the step: draw nothing (as if it were not here)
                continue
            shape = (self.n[f], *((self.s[f],) + rest[1:] if seq else rest))
            part = keep[f] if full else keep[(f, slice(0, shape[0])) + ((slice(0, shape[1]),) if seq else ())]
            part.copy_(keep_bits(shape, 1.0 - p, g, x.device))
        return keep.to(x.dtype).mul_(1.0 / (1.0 - p))


BITS_PER_DRAW = 16  # a keep decision compares 16 random bits with the keep probability (resolution 2^-16)


def keep_bits(shape: tuple, keep: float, generator: torch.Generator, device) -> torch.Tensor:
    """Bernoulli(keep) booleans of `shape` from `generator`: one 64-bit draw gives four 16-bit uniforms, a
    quarter of the generator calls of torch.rand (the mask drawing was the largest cost of a CV step on CPU)."""
    n = 1
    for v in shape:
        n *= int(v)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2 ** 63, None, generator=generator)
    threshold = round(keep * 2 ** BITS_PER_DRAW) - 2 ** (BITS_PER_DRAW - 1)  # int16 chunks are uniform on [-2^15, 2^15)
    return (words.view(torch.int16)[:n] < threshold).view(shape)


class FoldModule(nn.Module):
    """Base of the fold layers: `reset(generators)` initialises each fold's slice from its generator."""

    def reset(self, generators: Sequence[torch.Generator]) -> None:  # overridden where there are weights
        pass


class Dropout(FoldModule):
    """Dropout with per-fold masks (FoldNoise, set on the model by the trainer); `seq`: dim 2 is the segment axis."""

    def __init__(self, p: float, seq: bool):
        super().__init__()
        self.p, self.seq = p, seq
        self.noise: Optional[FoldNoise] = None

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if self.noise is None:  # training outside the trainer: torch's global generator
            return F.dropout(x, self.p, True)
        return x * self.noise.mask(x, self.p, self.seq)


class Linear(FoldModule):
    """x (F, ..., d_in) -> (F, ..., d_out); weight (F, d_in, d_out), initialised as nn.Linear."""

    def __init__(self, folds: int, d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(folds, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(folds, d_out)) if bias else None

    def reset(self, generators):
        bound = 1 / math.sqrt(self.weight.shape[1])
        with torch.no_grad():
            for f, g in enumerate(generators):
                self.weight[f].uniform_(-bound, bound, generator=g)
                if self.bias is not None:
                    self.bias[f].uniform_(-bound, bound, generator=g)

    def forward(self, x, shift=None, scale=None):
        """x W + b; with (F, d_in) `shift` and `scale`, ((x - shift) / scale) W + b computed as x (W / scale) + b',
        so a standardised input is never materialised (it was the largest elementwise cost of a CV step)."""
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        weight, bias = self.weight, self.bias
        if scale is not None:
            weight = weight / scale.unsqueeze(-1)
            if shift is not None:
                shifted = torch.bmm(shift.unsqueeze(1), weight).squeeze(1)
                bias = -shifted if bias is None else bias - shifted
        y = torch.bmm(flat, weight) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, weight)
        return y.view(*x.shape[:-1], weight.shape[-1])


class LayerNorm(FoldModule):
    def __init__(self, folds: int, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(folds, d))
        self.bias = nn.Parameter(torch.zeros(folds, d))

    def reset(self, generators):
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()

    def forward(self, x):
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        return torch.addcmul(self.bias.view(shape), F.layer_norm(x, x.shape[-1:]), self.weight.view(shape))


class Projection(FoldModule):
    """x W -> LayerNorm -> dropout (METHOD.md §2 choice)."""

    def __init__(self, folds: int, d_in: int, d: int, dropout: float, seq: bool = True):
        super().__init__()
        self.linear, self.norm, self.drop = Linear(folds, d_in, d), LayerNorm(folds, d), Dropout(dropout, seq)

    def forward(self, x, shift=None, scale=None):
        return self.drop(self.norm(self.linear(x, shift, scale)))


class Attention(FoldModule):
    """Multi-head attention with a key padding mask (torch's fused scaled_dot_product_attention on strided
    head views; an additive mask of NEG keeps a fully-masked row finite)."""

    def __init__(self, folds: int, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (Linear(folds, d, d) for _ in range(4))
        self.drop = Dropout(dropout, seq=True)

    def forward(self, query, key, key_mask):
        f, b, s_q, d = query.shape
        s_k, dh = key.shape[2], d // self.heads
        q = self.q(query).view(f * b, s_q, self.heads, dh).transpose(1, 2)
        k = self.k(key).view(f * b, s_k, self.heads, dh).transpose(1, 2)
        v = self.v(key).view(f * b, s_k, self.heads, dh).transpose(1, 2)
        bias = torch.zeros(f * b, 1, 1, s_k, dtype=q.dtype, device=q.device).masked_fill_(
            ~key_mask.reshape(f * b, 1, 1, s_k), NEG)
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (F·B, heads, s_q, dh)
        return self.drop(self.out(z.transpose(1, 2).reshape(f, b, s_q, d)))


class EncoderLayer(FoldModule):
    """One post-norm transformer encoder layer over segments: self-attention + GELU feed-forward, residuals."""

    def __init__(self, folds: int, d: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.attn = Attention(folds, d, heads, dropout)
        self.norm1, self.norm2 = LayerNorm(folds, d), LayerNorm(folds, d)
        self.ff_in, self.ff_out = Linear(folds, d, ff_mult * d), Linear(folds, ff_mult * d, d)
        self.drop_ff, self.drop = Dropout(dropout, seq=True), Dropout(dropout, seq=True)

    def forward(self, x, mask):
        x = self.norm1(x + self.attn(x, x, mask))
        return self.norm2(x + self.drop(self.ff_out(self.drop_ff(F.gelu(self.ff_in(x))))))


class AttentionPool(FoldModule):
    """α = softmax_s(wᵀ tanh(W H_s + b)) over valid segments, h = Σ_s α_s H_s. Returns (h, α).
    With `source` (F, B, S, d), the scores read source_s instead of H_s (model.pool_scores "segment")."""

    def __init__(self, folds: int, d: int):
        super().__init__()
        self.proj, self.w = Linear(folds, d, d), Linear(folds, d, 1, bias=False)

    def forward(self, H, mask, source=None):
        scores = self.w(torch.tanh(self.proj(H if source is None else source))).squeeze(-1).masked_fill(~mask, NEG)
        alpha = torch.softmax(scores, dim=-1) * mask  # exact zeros on padding, all zeros if no segment
        return (alpha.unsqueeze(-1) * H).sum(-2), alpha


class InteractionPool(FoldModule):
    """Second-order pooling of the aligned audio and text segments (README, "Method": `model.interaction`):
    u_s = LN(x_a,s P), v_s = LN(x_t,s Q) of rank r, h_x = LN(mean_s u_s ⊙ v_s). Each channel is a learned bilinear
    form x_aᵀ(p_k q_kᵀ)x_t of the *same* segment's projected audio and text (X_a, X_t, the encoders' inputs), averaged
    over the document: what neither a pooled modality nor attention across segments can express (the suite's
    agreement task). Reading the projected segments rather than the raw features shares the input projections with
    the rest of the model: far fewer weights to fit on a few hundred documents."""

    def __init__(self, folds: int, d: int, rank: int):
        super().__init__()
        self.rank = rank
        self.u, self.v = Linear(folds, d, rank), Linear(folds, d, rank)  # (named apart from the raw-feature maps of old files)

    def forward(self, Xa, Xt, mask):
        u = F.layer_norm(self.u(Xa), (self.rank,))
        v = F.layer_norm(self.v(Xt), (self.rank,))
        return F.layer_norm(masked_mean(u * v, mask), (self.rank,))


class PositionPool(FoldModule):
    """Where in the document something is said (README, "Method": `model.positions`): r learned content detectors
    read each segment's projected audio and text (the encoders' inputs X_a, X_t); detector k weighs the document's
    segments by a softmax of its score, β_k,s = softmax_s([x_a,s ; x_t,s] p_k + b_k), and h_p = [Σ_s β_k,s φ(s)]_k
    is where each detector's content sits, φ the 2n Fourier features of the segment's relative position
    (`position_features`). A linear read-out of h_p tells *when* the detected content occurs; a segment a detector
    does not pick moves h_p little, so the pooling does not blur occlusion's ranking of segments."""

    def __init__(self, folds: int, d: int, rank: int, n_freq: int):
        super().__init__()
        self.rank, self.n_freq = rank, n_freq
        self.focus = Linear(folds, 2 * d, rank)

    @property
    def width(self) -> int:
        return self.rank * 2 * self.n_freq

    def forward(self, Xa, Xt, mask):
        scores = self.focus(torch.cat([Xa, Xt], dim=-1)).masked_fill(~mask.unsqueeze(-1), NEG)
        beta = torch.softmax(scores, dim=-2) * mask.unsqueeze(-1)  # (F, B, S, r); all zeros if no segment
        phi = position_features(mask, self.n_freq).to(beta.dtype)
        return torch.einsum("...sr,...sp->...rp", beta, phi).flatten(-2)


class MLP(FoldModule):
    """Linear layers with ReLU + dropout between them (and after the last when `last_activation`)."""

    def __init__(self, folds: int, dims: Sequence[int], dropout: float, last_activation: bool):
        super().__init__()
        self.layers = nn.ModuleList(Linear(folds, a, b) for a, b in zip(dims[:-1], dims[1:]))
        n_act = len(self.layers) if last_activation else len(self.layers) - 1
        self.drops = nn.ModuleList(Dropout(dropout, seq=False) for _ in range(n_act))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.drops):
                x = self.drops[i](F.relu(x))
        return x


class MoE(FoldModule):
    """K expert MLPs (in -> 32 -> 32) mixed by a softmax gate: y = Σ_k g_k(x) E_k(x) (METHOD.md §6).

    Expert weights are (F, K, in, out), applied with one einsum. `top_k` keeps only the k largest gate
    logits (sparse gating, a choice); None is the paper's dense gate."""

    def __init__(self, folds: int, d_in: int, experts: int, hidden: Sequence[int], dropout: float, top_k: Optional[int] = None):
        super().__init__()
        self.top_k = top_k
        self.gate = Linear(folds, d_in, experts)
        dims = [d_in, *hidden]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(folds, experts, a, b)) for a, b in zip(dims[:-1], dims[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(folds, experts, b)) for b in dims[1:])
        self.drops = nn.ModuleList(Dropout(dropout, seq=False) for _ in dims[1:])

    def reset(self, generators):
        with torch.no_grad():
            for w, b in zip(self.weights, self.biases):
                bound = 1 / math.sqrt(w.shape[2])  # nn.Linear's default, per expert
                for f, g in enumerate(generators):
                    w[f].uniform_(-bound, bound, generator=g)
                    b[f].uniform_(-bound, bound, generator=g)

    def forward(self, x):
        logits = self.gate(x)  # (F, B, K)
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            kth = logits.topk(self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, NEG)
        gates = torch.softmax(logits, dim=-1)
        h = self.drops[0](F.relu(torch.einsum("fbi,fkio->fbko", x, self.weights[0]) + self.biases[0].unsqueeze(1)))
        for i in range(1, len(self.weights)):  # index, never slice: a sliced ParameterList re-wraps its tensors
            h = self.drops[i](F.relu(torch.einsum("fbki,fkio->fbko", h, self.weights[i]) + self.biases[i].unsqueeze(1)))
        return (gates.unsqueeze(-1) * h).sum(-2), gates


def masked_mean(X, mask):
    m = mask.to(X.dtype).unsqueeze(-1)
    return (X * m).sum(-2) / m.sum(-2).clamp_min(1.0)


def position_features(mask: torch.Tensor, n: int) -> torch.Tensor:
    """(F, B, S, 2n) Fourier features of each segment's relative position r = s / (S_doc - 1) in its document:
    sin(π k r), cos(π k r) for k = 1..n. Relative, because documents differ in length; s counts the valid
    segments before it, so a masked-out segment (occlusion) is exactly a deleted one."""
    valid = mask.to(torch.float32)
    length = valid.sum(-1, keepdim=True)
    s = valid.cumsum(-1) - 1.0
    r = (s / (length - 1).clamp_min(1.0)).unsqueeze(-1)  # (F, B, S, 1)
    k = torch.arange(1, n + 1, device=mask.device, dtype=torch.float32) * math.pi
    return torch.cat([torch.sin(r * k), torch.cos(r * k)], dim=-1)
