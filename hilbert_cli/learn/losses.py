"""The HILBERT losses (METHOD.md §5), each usable and checkable on its own.

Every function takes (B, d) tensors and returns a scalar tensor. The optional `mask` is a (B,)
tensor of 0/1 (or bool) per sample: rows with 0 are left out exactly as if they were not in the
batch, which lets `hilbert evaluate` train many folds at once on one padded batch. With fewer than
two samples in use the auxiliary terms are 0 (never NaN, with finite gradients). There is no
Python control flow on tensor values, so the functions run under torch.func.vmap.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

NEG = -1e9  # "minus infinity" that keeps softmax/logsumexp finite when a whole row is masked
EPS = 1e-12


def _weights(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    if mask is None:
        return x.new_ones(x.shape[0])
    return mask.to(x.dtype)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1, eps=1e-8)


def nt_xent(u: torch.Tensor, v: torch.Tensor, temperature: float, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """NT-Xent between paired rows of u and v (METHOD.md §5, one modality's L_m).

    U = [u; v] (2B rows, L2-normalised), sim = U Uᵀ / τ; row r's positive is its partner (i <-> B+i),
    its denominator sums exp(sim[r, c]) over every c != r in use (the positive included).
    """
    w = _weights(u, mask)
    b = u.shape[0]
    U = _unit(torch.cat([u, v], dim=0))
    ww = torch.cat([w, w])
    sim = U @ U.T / temperature
    keep = (ww[None, :] > 0) & ~torch.eye(2 * b, dtype=torch.bool, device=u.device)
    sim = sim.masked_fill(~keep, NEG)
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(u.device)
    log_prob = sim.gather(1, partner[:, None]).squeeze(1) - torch.logsumexp(sim, dim=1)
    return -(ww * log_prob).sum() / ww.sum().clamp_min(1.0)


def dual_contrastive_loss(z_a, z_t, z_j, temperature: float, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """L_con = L_a + L_t: joint–audio plus joint–text NT-Xent; deliberately no audio–text term."""
    return nt_xent(z_j, z_a, temperature, mask) + nt_xent(z_j, z_t, temperature, mask)


def audio_text_contrastive_loss(z_a, z_t, temperature: float, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The conventional audio–text NT-Xent used by the `contrastive-moe` configuration."""
    return nt_xent(z_a, z_t, temperature, mask)


def linear_cka(x: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Linear CKA = ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F) on batch-centred x, y; in [0, 1].

    Computed through B×B Gram matrices (‖Yᵀ X‖²_F = <X Xᵀ, Y Yᵀ>), cheap because B << d.
    Fewer than two samples in use (nothing to centre) gives 0.
    """
    w = _weights(x, mask)
    n = w.sum()
    xc = (x - (w[:, None] * x).sum(0) / n.clamp_min(1.0)) * w[:, None]
    yc = (y - (w[:, None] * y).sum(0) / n.clamp_min(1.0)) * w[:, None]
    kx, ky = xc @ xc.T, yc @ yc.T
    num = (kx * ky).sum()
    den = torch.sqrt(((kx * kx).sum() * (ky * ky).sum()).clamp_min(EPS))
    return torch.where(n >= 2, num / den, torch.zeros_like(num))


def cka_loss(z_a, z_t, z_j, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """L_cka = (1 − CKA(z_a, z_j)) + (1 − CKA(z_t, z_j)) on the L2-normalised embeddings; 0 below two samples."""
    za, zt, zj = _unit(z_a), _unit(z_t), _unit(z_j)
    loss = (1 - linear_cka(za, zj, mask)) + (1 - linear_cka(zt, zj, mask))
    n = _weights(z_a, mask).sum()
    return torch.where(n >= 2, loss, torch.zeros_like(loss))


def linear_cka_features(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Linear CKA of many weighted samples (N, d), through d×d cross-products (cheap when N >> d)."""
    n = w.sum()
    xc = (x - (w[:, None] * x).sum(0) / n.clamp_min(1.0)) * w[:, None]
    yc = (y - (w[:, None] * y).sum(0) / n.clamp_min(1.0)) * w[:, None]
    num = (yc.T @ xc).pow(2).sum()
    den = torch.sqrt(((xc.T @ xc).pow(2).sum() * (yc.T @ yc).pow(2).sum()).clamp_min(EPS))
    return torch.where(n >= 2, num / den, torch.zeros_like(num))


def segment_cka_loss(H_a, H_t, H_j, seg_mask, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """L_cka on segment states: (1 − CKA(H_a, H_j)) + (1 − CKA(H_t, H_j)) over every valid segment of the batch
    (H: (B, S, d), seg_mask (B, S)). With hundreds of segments per batch, CKA of unrelated states is near 0,
    where the document-level CKA of 16 L2-normalised vectors is near 0.9 whatever they are (README, "Method")."""
    w = seg_mask.to(H_a.dtype) * _weights(H_a, mask)[:, None]
    flat = lambda H: H.reshape(-1, H.shape[-1])  # noqa: E731
    w = w.reshape(-1)
    loss = (1 - linear_cka_features(flat(H_a), flat(H_j), w)) + (1 - linear_cka_features(flat(H_t), flat(H_j), w))
    return torch.where(w.sum() >= 2, loss, torch.zeros_like(loss))


def infonce_mi(z_j, z_m, temperature: float, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Î(z_j; z_m) = log B + mean_i [f(z_j^i, z_m^i) − logsumexp_k f(z_j^i, z_m^k)], f(u, v) = u·v / τ.

    u, v are L2-normalised; B counts the samples in use, so the estimate is at most log B.
    """
    w = _weights(z_j, mask)
    n = w.sum()
    f = _unit(z_j) @ _unit(z_m).T / temperature
    f = f.masked_fill(w[None, :] <= 0, NEG)
    per_row = f.diagonal() - torch.logsumexp(f, dim=1)
    mean = (w * per_row).sum() / n.clamp_min(1.0)
    return torch.log(n.clamp_min(1.0)) + mean


def mi_balance_loss(z_a, z_t, z_j, temperature: float, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """L_mi = |Î(z_j; z_a) − Î(z_j; z_t)|: neither modality should dominate the joint space."""
    return (infonce_mi(z_j, z_a, temperature, mask) - infonce_mi(z_j, z_t, temperature, mask)).abs()


def mi_loss(z_a, z_t, z_j, temperature: float, mode: str = "balance", mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The MI term in one of its two readings of the paper (§2.3.4), or both:
    balance  |Î(z_j; z_a) − Î(z_j; z_t)|  (neither modality dominates the joint space; METHOD.md §5)
    maximize −(Î(z_j; z_a) + Î(z_j; z_t))  (the joint representation keeps information of each modality)
    both     the sum of the two."""
    i_a, i_t = infonce_mi(z_j, z_a, temperature, mask), infonce_mi(z_j, z_t, temperature, mask)
    balance, maximize = (i_a - i_t).abs(), -(i_a + i_t)
    if mode == "balance":
        return balance
    if mode == "maximize":
        return maximize
    return balance + maximize


def class_weights_for(y: torch.Tensor, n_classes: int, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Inverse-frequency class weights n / (C · n_c), normalised so a balanced set gives all ones.

    A class absent from y (possible in a small fold) gets weight 0 rather than infinity.
    """
    w = torch.ones(y.shape[0], dtype=torch.float32, device=y.device) if mask is None else mask.float()
    counts = torch.zeros(n_classes, dtype=torch.float32, device=y.device).index_add(0, y, w)
    return torch.where(counts > 0, w.sum() / (n_classes * counts.clamp_min(1.0)), torch.zeros_like(counts))


def cross_entropy(logits, y, class_weights: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None):
    """Weighted mean cross-entropy (same as F.cross_entropy(weight=...)), over the samples in use."""
    w = _weights(logits, mask)
    if class_weights is not None:
        w = w * class_weights[y]
    nll = -F.log_softmax(logits, dim=-1).gather(1, y[:, None]).squeeze(1)
    return (w * nll).sum() / w.sum().clamp_min(EPS)


def total_loss(outputs: dict, y: torch.Tensor, class_weights: Optional[torch.Tensor], config,
               mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = L_ce + Σ λ_k L_k over the config's auxiliary losses (learn/registry.py); returns (total, parts).

    Pure: depends only on its arguments (the config is static), so it works under vmap.
    `parts` has "ce" and every registered loss's column (0 for terms not in use).
    """
    from .registry import LOSS_COLUMNS

    ce = cross_entropy(outputs["logits"], y, class_weights, mask)
    parts = {"ce": ce, **{c: ce * 0.0 for c in LOSS_COLUMNS}}
    total = ce
    lc = config.loss
    for term in config.aux_terms:
        parts[term.column] = term.fn(outputs, lc, mask)
        total = total + getattr(lc, term.weight) * parts[term.column]
    return total, parts
