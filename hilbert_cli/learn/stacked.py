"""HilbertModel's forward for F fold models at once, written with an explicit leading fold dimension.

`batched.py` trains every fold of a configuration together. For the transfer baselines it runs
`vmap(functional_call(model))`; for the encoder configurations (`hilbert`, `contrastive-moe`) it
runs `forward` below instead, which computes exactly what `model.HilbertModel.forward` computes on
each fold (tests/test_stacked.py checks it to 1e-12 in float64) but in fewer, larger kernels:
  - every linear layer is one batched product plus an in-place bias add;
  - attention runs head by head on strided views, where vmap reshapes (copies) the (F, B, h, S, S)
    score and (F, B, h, S, d/h) value tensors several times per layer.
On the 500-document benchmark (25 folds × 16 documents × 30 segments per step) the forward went from
80 to 66 ms per step (README, "Speed").

`p` is the dict of stacked parameters, named as in `HilbertModel.named_parameters()`, each with a
leading fold dimension F. Activations are (F, B, S, d). Dropout draws one mask per step shared by all
folds (as vmap's randomness="same" does).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import HilbertConfig
from .model import NEG


class StackedForward:
    """`forward(p, A, T, mask)` of HilbertModel for stacked parameters; `training` turns dropout on."""

    def __init__(self, config: HilbertConfig):
        m = config.model
        self.heads, self.dropout, self.top_k = m.heads, m.dropout, m.top_k
        self.n_expert_layers = len(m.expert_hidden)
        self.n_head_layers = len(m.head_hidden) + 1
        self.training = True

    # --- building blocks (each mirrors the model.py module of the same name) ---------------------

    def drop(self, x):
        if not self.training or self.dropout == 0:
            return x
        # one mask for every fold; flat views, because torch's broadcasting multiply over (F, B, S, d)
        # by (B, S, d) ran 2.5x slower than over (F, n) by (n,)
        keep = (torch.rand(x.shape[1:]) < 1 - self.dropout).to(x.dtype).div_(1 - self.dropout)
        return (x.reshape(x.shape[0], -1) * keep.view(-1)).view(x.shape)

    @staticmethod
    def linear(p, name, x):
        """nn.Linear per fold: x (F, ..., d_in) -> (F, ..., d_out)."""
        w, b = p[name + ".weight"], p.get(name + ".bias")
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        y = torch.bmm(flat, w.transpose(1, 2))
        if b is not None:
            y = y.add_(b.unsqueeze(1))
        return y.view(*x.shape[:-1], w.shape[1])

    @staticmethod
    def layer_norm(p, name, x):
        w, b = p[name + ".weight"], p[name + ".bias"]
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        return torch.addcmul(b.view(shape), F.layer_norm(x, x.shape[-1:]), w.view(shape))

    def projection(self, p, name, x):
        return self.drop(self.layer_norm(p, name + ".norm", self.linear(p, name + ".linear", x)))

    def attention(self, p, name, query, key, key_mask):
        f, b, s_q, d = query.shape
        s_k, h = key.shape[2], self.heads
        dh = d // h
        q = self.linear(p, name + ".q", query).view(f * b, s_q, d)
        k = self.linear(p, name + ".k", key).view(f * b, s_k, d)
        v = self.linear(p, name + ".v", key).view(f * b, s_k, d)
        # a masked key gets NEG added: its softmax weight is exactly 0, as with the model's masked_fill.
        # (A document with no segment at all gets other finite weights than the model's uniform ones,
        # but every pooling gives its positions weight 0, so no output differs.)
        bias = torch.zeros(f * b, 1, s_k, dtype=q.dtype).masked_fill_(~key_mask.reshape(f * b, 1, s_k), NEG)
        scale = 1 / math.sqrt(dh)
        z = []
        # head by head on strided views: no copies of q, k, v (split, not slicing: its backward is
        # one concatenation, where each slice's backward would fill a zero tensor of q's size)
        for qi, ki, vi in zip(q.split(dh, -1), k.split(dh, -1), v.split(dh, -1)):
            scores = torch.baddbmm(bias, qi, ki.transpose(1, 2), alpha=scale)
            z.append(torch.bmm(torch.softmax(scores, dim=-1), vi))
        z = torch.cat(z, dim=-1).view(f, b, s_q, d)
        return self.drop(self.linear(p, name + ".out", z))

    def encoder_layer(self, p, name, x, mask):
        x = self.layer_norm(p, name + ".norm1", x + self.attention(p, name + ".attn", x, x, mask))
        ff = self.linear(p, name + ".ff.3", self.drop(F.gelu(self.linear(p, name + ".ff.0", x))))
        return self.layer_norm(p, name + ".norm2", x + self.drop(ff))

    def attention_pool(self, p, name, H, mask):
        scores = self.linear(p, name + ".w", torch.tanh(self.linear(p, name + ".proj", H))).squeeze(-1)
        alpha = torch.softmax(scores.masked_fill(~mask, NEG), dim=-1) * mask
        return (alpha[..., None] * H).sum(-2), alpha

    def mlp(self, p, name, x, n_layers, last_activation):
        for i in range(n_layers):  # nn.Sequential indices: Linear at 0, 3, 6, ... (ReLU, Dropout between)
            x = self.linear(p, f"{name}.{3 * i}", x)
            if i < n_layers - 1 or last_activation:
                x = self.drop(F.relu(x))
        return x

    def moe(self, p, name, x):
        logits = self.linear(p, name + ".gate", x)  # (F, B, K)
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            kth = logits.topk(self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, NEG)
        gates = torch.softmax(logits, dim=-1)
        h = self.drop(F.relu(torch.einsum("fbi,fkio->fbko", x, p[name + ".weights.0"]) + p[name + ".biases.0"][:, None]))
        for i in range(1, self.n_expert_layers):
            h = self.drop(F.relu(torch.einsum("fbki,fkio->fbko", h, p[f"{name}.weights.{i}"]) + p[f"{name}.biases.{i}"][:, None]))
        return (gates[..., None] * h).sum(-2), gates

    def g(self, p, x):
        return self.linear(p, "g.2", F.relu(self.linear(p, "g.0", x)))

    # --- the model ------------------------------------------------------------------------------

    def __call__(self, p: dict, A, T, mask) -> dict:
        H_a = self.encoder_layer(p, "enc_a", self.projection(p, "proj_a", A), mask)
        H_t = self.encoder_layer(p, "enc_t", self.projection(p, "proj_t", T), mask)
        h_a, alpha_a = self.attention_pool(p, "pool_a", H_a, mask)
        h_t, alpha_t = self.attention_pool(p, "pool_t", H_t, mask)
        Z = torch.cat([self.attention(p, "cross_at", H_a, H_t, mask), self.attention(p, "cross_ta", H_t, H_a, mask)], dim=-1)
        H_j = self.encoder_layer(p, "enc_j", self.projection(p, "fuse", Z), mask)
        h_j, alpha_j = self.attention_pool(p, "pool_j", H_j, mask)
        y, gates = self.moe(p, "moe", torch.cat([h_a, h_t, h_j], dim=-1))
        return {
            "logits": self.mlp(p, "head", y, self.n_head_layers, last_activation=False),
            "h_a": h_a, "h_t": h_t, "h_j": h_j,
            "z_a": self.g(p, h_a), "z_t": self.g(p, h_t), "z_j": self.g(p, h_j),
            "alpha_a": alpha_a, "alpha_t": alpha_t, "alpha_j": alpha_j,
            "gates": gates,
        }
