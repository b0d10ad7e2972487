"""Each HILBERT loss against an independent computation from its formula (METHOD.md §5)."""
import math

import numpy as np
import pytest
import torch

from hilbert_cli.learn.config import HilbertConfig
from hilbert_cli.learn.losses import (
    audio_text_contrastive_loss, class_weights_for, cka_loss, cross_entropy, dual_contrastive_loss,
    infonce_mi, linear_cka, mi_balance_loss, total_loss,
)

TAU = 0.5


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ref_nt_xent(u, v, tau):
    """Loop over the 2B rows: -log exp(sim[r, partner]) / sum_{c != r} exp(sim[r, c])."""
    U = unit(np.concatenate([u, v]))
    n = len(U)
    b = n // 2
    total = 0.0
    for r in range(n):
        partner = r + b if r < b else r - b
        den = sum(math.exp(U[r] @ U[c] / tau) for c in range(n) if c != r)
        total += -math.log(math.exp(U[r] @ U[partner] / tau) / den)
    return total / n


def ref_cka(x, y):
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def ref_infonce(zj, zm, tau):
    zj, zm = unit(zj), unit(zm)
    b = len(zj)
    vals = []
    for i in range(b):
        f = [zj[i] @ zm[k] / tau for k in range(b)]
        lse = math.log(sum(math.exp(v) for v in f))
        vals.append(f[i] - lse)
    return math.log(b) + sum(vals) / b


@pytest.fixture
def z():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(6, 5, generator=g, dtype=torch.float64) for _ in range(3)]


def test_dual_contrastive_matches_loop(z):
    za, zt, zj = z
    got = dual_contrastive_loss(za, zt, zj, TAU).item()
    want = ref_nt_xent(zj.numpy(), za.numpy(), TAU) + ref_nt_xent(zj.numpy(), zt.numpy(), TAU)
    assert got == pytest.approx(want, rel=1e-9)


def test_audio_text_contrastive_matches_loop(z):
    za, zt, _ = z
    assert audio_text_contrastive_loss(za, zt, TAU).item() == pytest.approx(ref_nt_xent(za.numpy(), zt.numpy(), TAU), rel=1e-9)


@pytest.mark.parametrize("b", [2, 3, 5])
def test_contrastive_closed_forms(b):
    # identical embeddings: every similarity is 1/τ, so each row's loss is log(2B - 1), twice.
    u = torch.ones(b, 4, dtype=torch.float64)
    assert dual_contrastive_loss(u, u, u, TAU).item() == pytest.approx(2 * math.log(2 * b - 1))
    # documents mutually orthogonal, partners identical: positive 1/τ, 2B - 2 negatives at 0.
    e = torch.eye(b, dtype=torch.float64)
    want = 2 * math.log(1 + (2 * b - 2) * math.exp(-1 / TAU))
    assert dual_contrastive_loss(e, e, e, TAU).item() == pytest.approx(want)
    # all 2B vectors orthogonal (joint orthogonal to its partner too): every similarity 0.
    e2 = torch.eye(2 * b, dtype=torch.float64)
    zj, zm = e2[:b], e2[b:]
    assert dual_contrastive_loss(zm, zm, zj, TAU).item() == pytest.approx(2 * math.log(2 * b - 1))


def test_cka_matches_formula_and_invariances(z):
    x, y, _ = z
    assert linear_cka(x, y).item() == pytest.approx(ref_cka(x.numpy(), y.numpy()), rel=1e-9)
    assert linear_cka(x, x).item() == pytest.approx(1.0)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    assert linear_cka(x @ q, y).item() == pytest.approx(linear_cka(x, y).item(), rel=1e-9)
    assert linear_cka(3.7 * x, y).item() == pytest.approx(linear_cka(x, y).item(), rel=1e-9)
    assert 0.0 <= linear_cka(x, y).item() <= 1.0


def test_cka_loss_is_on_unit_vectors(z):
    za, zt, zj = z
    want = (1 - ref_cka(unit(za), unit(zj))) + (1 - ref_cka(unit(zt), unit(zj)))
    assert cka_loss(za, zt, zj).item() == pytest.approx(want, rel=1e-9)
    assert cka_loss(zj, zj, zj).item() == pytest.approx(0.0, abs=1e-12)


def test_infonce_matches_loop_and_is_at_most_log_b(z):
    za, zt, zj = z
    assert infonce_mi(zj, za, TAU).item() == pytest.approx(ref_infonce(zj.numpy(), za.numpy(), TAU), rel=1e-9)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        a, b = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)
        assert infonce_mi(a, b, 0.05).item() <= math.log(7) + 1e-6
        assert infonce_mi(a, a, 0.05).item() <= math.log(7) + 1e-6
    want = abs(ref_infonce(zj.numpy(), za.numpy(), TAU) - ref_infonce(zj.numpy(), zt.numpy(), TAU))
    assert mi_balance_loss(za, zt, zj, TAU).item() == pytest.approx(want, rel=1e-9)


def _all_losses(za, zt, zj, mask=None):
    return {
        "dual": dual_contrastive_loss(za, zt, zj, TAU, mask),
        "at": audio_text_contrastive_loss(za, zt, TAU, mask),
        "cka": cka_loss(za, zt, zj, mask),
        "mi": mi_balance_loss(za, zt, zj, TAU, mask),
        "info": infonce_mi(zj, za, TAU, mask),
    }


def test_mask_all_ones_equals_unmasked_and_masked_rows_are_ignored(z):
    za, zt, zj = z
    plain = _all_losses(za, zt, zj)
    ones = _all_losses(za, zt, zj, torch.ones(6))
    for k in plain:
        assert ones[k].item() == pytest.approx(plain[k].item(), rel=1e-12)
    keep = torch.tensor([1, 0, 1, 1, 0, 1.0])
    sub = _all_losses(za[keep > 0], zt[keep > 0], zj[keep > 0])
    garbage = [t.clone() for t in z]
    for t in garbage:
        t[keep == 0] = 1e3 * torch.randn(2, 5, dtype=torch.float64)
    masked = _all_losses(*garbage, mask=keep.bool())
    for k in sub:
        assert masked[k].item() == pytest.approx(sub[k].item(), rel=1e-9), k


@pytest.mark.parametrize("b", [1, 2])
def test_small_batches_finite_and_zero_for_one(b):
    zs = [torch.randn(b, 4, requires_grad=True) for _ in range(3)]
    out = _all_losses(*zs)
    for k, v in out.items():
        assert torch.isfinite(v), k
        if b == 1:
            assert v.item() == 0.0, k
    sum(out.values()).backward()
    for t in zs:
        assert torch.isfinite(t.grad).all()
    # a single sample left by the mask behaves like a batch of one
    keep = torch.zeros(b)
    keep[0] = 1
    zs2 = [torch.randn(b, 4, requires_grad=True) for _ in range(3)]
    out = _all_losses(*zs2, mask=keep)
    assert all(v.item() == 0.0 for v in out.values())
    sum(out.values()).backward()
    assert all(torch.isfinite(t.grad).all() for t in zs2)


def test_degenerate_batch_gives_finite_gradients():
    zs = [torch.ones(4, 3, requires_grad=True) for _ in range(3)]  # nothing to centre: CKA 0/0
    out = _all_losses(*zs)
    assert all(torch.isfinite(v) for v in out.values())
    sum(out.values()).backward()
    assert all(torch.isfinite(t.grad).all() for t in zs)


def test_cross_entropy_and_class_weights_match_torch():
    g = torch.Generator().manual_seed(3)
    logits, y = torch.randn(9, 3, generator=g), torch.tensor([0, 0, 0, 0, 0, 1, 1, 2, 0])
    w = class_weights_for(y, 3)
    counts = np.bincount(y.numpy(), minlength=3)
    assert np.allclose(w.numpy(), 9 / (3 * counts))
    want = torch.nn.functional.cross_entropy(logits, y, weight=w)
    assert cross_entropy(logits, y, w).item() == pytest.approx(want.item(), rel=1e-6)
    assert class_weights_for(torch.tensor([0, 0, 1]), 3)[2].item() == 0.0  # absent class: 0, not inf


def test_total_loss_weights_and_configuration_switches(z):
    za, zt, zj = z
    logits, y = torch.randn(6, 2, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 1, 0])
    out = {"logits": logits, "z_a": za, "z_t": zt, "z_j": zj}
    cfg = HilbertConfig.from_dict({"loss": {"lambda_con": 0.5, "lambda_cka": 2.0, "lambda_mi": 3.0,
                                            "temperature": 0.1, "temperature_mi": 0.2}})
    total, parts = total_loss(out, y, None, cfg)
    want = (cross_entropy(logits, y) + 0.5 * dual_contrastive_loss(za, zt, zj, 0.1) + 2 * cka_loss(za, zt, zj)
            + 3 * mi_balance_loss(za, zt, zj, 0.2))
    assert total.item() == pytest.approx(want.item(), rel=1e-9)
    cfg = HilbertConfig.from_dict({"configuration": "contrastive-moe"})
    total, parts = total_loss(out, y, None, cfg)
    tau = cfg.loss.temperature
    assert parts["con"].item() == pytest.approx(audio_text_contrastive_loss(za, zt, tau).item())
    assert parts["cka"].item() == 0.0 and parts["mi"].item() == 0.0
    cfg = HilbertConfig.from_dict({"loss": {"losses": ["cka"]}})
    total, parts = total_loss(out, y, None, cfg)
    assert parts["con"].item() == 0.0 and parts["cka"].item() > 0
