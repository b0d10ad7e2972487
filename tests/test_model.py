"""The HILBERT model and config: shapes, padding invariance, finite gradients, vmap, config loading."""
import numpy as np
import pytest
import torch

from hilbert_cli.learn.config import CONFIGURATIONS, HilbertConfig, load_config
from hilbert_cli.learn.data import label_order, pad_batch, synthetic_embeddings
from hilbert_cli.errors import HilbertError
from hilbert_cli.learn.losses import class_weights_for, total_loss
from hilbert_cli.learn.model import MoE, build_model


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


DA, DT, C = 12, 10, 3
SMALL = {"model.d": 16, "model.heads": 2, "model.d_z": 8}
SECOND_ORDER = {"model.interaction": 4, "model.positions": 3}  # both second-order poolings on
PAPER_POOLING = {"model.pool_scores": "context", "model.positions": 0}  # METHOD.md §2 as written: pools score the contextual states, no position pooling


def small(name="hilbert", **over):
    return load_config(None, {"configuration": name, **SMALL, **over})


def docs(n=5, seed=0):
    A, T, y = synthetic_embeddings(n, C, segments=(3, 9), d_audio=DA, d_text=DT, seed=seed)
    return A, T, torch.as_tensor(y)


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_every_configuration_forward_shapes(name):
    torch.manual_seed(0)
    model = build_model(small(name), DA, DT, C).eval()
    A, T, y = docs()
    out = model(*pad_batch(A, T))
    assert out["logits"].shape == (5, C)
    if small(name).uses_encoders:
        for k in ("z_a", "z_t", "z_j"):
            assert out[k].shape == (5, 8)
        _, _, mask = pad_batch(A, T)
        for k in ("alpha_a", "alpha_t", "alpha_j"):
            assert torch.allclose(out[k].sum(1), torch.ones(5), atol=1e-5)
            assert (out[k][~mask] == 0).all()
    else:
        assert "z_j" not in out


@pytest.mark.parametrize("name, over", [(n, {}) for n in CONFIGURATIONS] + [("hilbert", SECOND_ORDER), ("hilbert", PAPER_POOLING)])
def test_padding_does_not_change_a_documents_output(name, over):
    torch.manual_seed(1)
    model = build_model(small(name, **over), DA, DT, C).eval()
    A, T, _ = docs(4)
    with torch.no_grad():
        alone = [model(*pad_batch([a], [t])) for a, t in zip(A, T)]
        # the same documents in one batch, plus a long one forcing heavy padding, plus garbage in the padding
        long_a, long_t = np.random.randn(40, DA).astype(np.float32), np.random.randn(40, DT).astype(np.float32)
        Ab, Tb, mask = pad_batch(A + [long_a], T + [long_t])
        Ab[~mask] = 1e4
        Tb[~mask] = -1e4
        batch = model(Ab, Tb, mask)
    for i, one in enumerate(alone):
        s = len(A[i])
        for k, v in one.items():
            w = batch[k][i]
            if k.startswith(("alpha", "H_", "segment_mask")):  # per-segment outputs
                assert torch.allclose(w[:s], v[0], atol=1e-5), k
            else:
                assert torch.allclose(w, v[0], atol=1e-5), k


@pytest.mark.parametrize("name, over", [("hilbert", {}), ("hilbert", SECOND_ORDER), ("transfer-moe", {})])
def test_masking_out_a_segment_is_deleting_it(name, over):
    """Occlusion masks one segment out: the model must see the document without it, the segments after it
    moving up one position (the position pooling counts valid segments, not array slots)."""
    model = build_model(small(name, **over), DA, DT, C).eval()
    A, T, _ = docs(1, seed=3)
    a, t, k = A[0], T[0], len(A[0]) // 2
    Ab, Tb, mask = pad_batch([a], [t])
    mask[0, k] = False
    with torch.no_grad():
        masked = model(Ab, Tb, mask)["logits"]
        deleted = model(*pad_batch([np.delete(a, k, axis=0)], [np.delete(t, k, axis=0)]))["logits"]
    assert torch.allclose(masked, deleted, atol=1e-5)


@pytest.mark.parametrize("over", [{}, SECOND_ORDER, PAPER_POOLING])
def test_fully_masked_document_is_finite(over):
    model = build_model(small(**over), DA, DT, C).eval()
    A, T, mask = pad_batch(*docs(3)[:2])
    mask[1] = False
    out = model(A, T, mask)
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("b", [1, 2])
@pytest.mark.parametrize("name", ["hilbert", "contrastive-moe", "transfer-moe"])
def test_gradients_finite_for_tiny_and_padded_batches(name, b):
    torch.manual_seed(2)
    cfg = small(name)
    model = build_model(cfg, DA, DT, C)
    A, T, y = docs(b)
    A[0] = A[0][:1]  # a one-segment document next to longer ones: heavy padding
    T[0] = T[0][:1]
    Ab, Tb, mask = pad_batch(A + [np.zeros((30, DA), np.float32)][:0], T)
    Ab = torch.cat([Ab, torch.zeros(b, 30, DA)], 1)
    Tb = torch.cat([Tb, torch.zeros(b, 30, DT)], 1)
    mask = torch.cat([mask, torch.zeros(b, 30, dtype=torch.bool)], 1)
    total, parts = total_loss(model(Ab, Tb, mask), y, class_weights_for(y, C), cfg)
    assert torch.isfinite(total)
    if b == 1:
        assert parts["con"].item() == parts["cka"].item() == parts["mi"].item() == 0.0
    total.backward()
    for name_, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name_


def test_second_order_options_are_checked():
    for key, bad in (("model.interaction", -1), ("model.positions", 1.5), ("model.position_rank", 0),
                     ("model.pool_scores", "local")):
        with pytest.raises(HilbertError, match=key.split(".")[1]):
            small(**{key: bad})
    model = build_model(small(**SECOND_ORDER), DA, DT, C)
    assert model.moe.weights[0].shape[-2] == 3 * 16 + 4 + 2 * 3 * 4  # [h_a; h_t; h_j; h_x (r); h_p (rank x 2n)]


def test_moe_dense_and_top_k_gates():
    gen = [torch.Generator().manual_seed(3)]
    moe = MoE(1, 6, experts=8, hidden=(32, 32), dropout=0.0)
    for m in moe.modules():
        if hasattr(m, "reset"):
            m.reset(gen)
    y, g = moe(torch.randn(1, 4, 6))
    assert y.shape == (1, 4, 32) and torch.allclose(g.sum(-1), torch.ones(1, 4)) and (g > 0).all()
    moe.top_k = 2
    y2, g2 = moe(torch.randn(1, 4, 6))
    assert ((g2 > 0).sum(-1) == 2).all() and torch.allclose(g2.sum(-1), torch.ones(1, 4))
    # the mixture equals the explicit sum over experts
    x = torch.randn(1, 3, 6)
    y3, g3 = moe(x)
    outs = []
    for k in range(8):
        h = x[0]
        for w, b in zip(moe.weights, moe.biases):
            h = torch.relu(h @ w[0, k] + b[0, k])
        outs.append(h)
    assert torch.allclose(y3[0], sum(g3[0, :, k:k + 1] * outs[k] for k in range(8)), atol=1e-6)


@pytest.mark.parametrize("name, over", [("hilbert", {}), ("transfer-moe", {}), ("hilbert", SECOND_ORDER),
                                        ("hilbert", PAPER_POOLING)])
def test_fold_model_equals_its_folds_alone(name, over):
    """A model of F folds computes, for each fold, what a one-fold model with that fold's weights computes."""
    cfg = small(name, **{"model.dropout": 0.0, **over})
    stacked = build_model(cfg, DA, DT, C, folds=3, seeds=[5, 6, 7]).eval()
    A, T, _ = docs(6)
    Ab, Tb, mask = pad_batch(A, T)
    out = stacked(Ab.expand(3, *Ab.shape), Tb.expand(3, *Tb.shape), mask.expand(3, *mask.shape))
    for f, seed in enumerate((5, 6, 7)):
        one = build_model(cfg, DA, DT, C, seeds=[seed]).eval()
        for (k, p), (_, q) in zip(one.named_parameters(), stacked.named_parameters()):
            assert torch.equal(p[0], q[f]), k  # fold f was initialised from its own seed alone
        alone = one(Ab, Tb, mask)
        for k, v in alone.items():
            assert torch.allclose(out[k][f], v, atol=1e-6), k
    assert not torch.allclose(out["logits"][0], out["logits"][1])


def test_config_yaml_overrides_and_unknown_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("configuration: contrastive-moe\nmodel:\n  d: 32\ntrain:\n  lr: 1e-3\n  epochs: 7\n")
    cfg = load_config(f, {"train.epochs": 3})
    assert cfg.configuration == "contrastive-moe" and cfg.model.d == 32 and cfg.train.epochs == 3
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.active_losses == ("contrastive",)
    back = HilbertConfig.from_dict(cfg.to_dict())
    assert back.to_dict() == cfg.to_dict()
    assert load_config(None, {"loss.losses": "cka,mi"}).active_losses == ("cka", "mi")
    assert load_config(None, {"loss.losses": []}).active_losses == ()
    f.write_text("model:\n  width: 3\n")
    with pytest.raises(HilbertError, match="model.width.*valid keys in model: d, heads"):
        load_config(f)
    with pytest.raises(HilbertError, match="unknown key 'lr'"):
        HilbertConfig.from_dict({"lr": 1})
    with pytest.raises(HilbertError, match="configuration.*valid: transfer"):
        load_config(None, {"configuration": "bert"})
    with pytest.raises(HilbertError, match="loss.losses.*valid: contrastive, cka, mi"):
        load_config(None, {"loss.losses": ["contrastive", "kl"]})
    with pytest.raises(HilbertError, match="no trained encoders"):
        load_config(None, {"configuration": "transfer", "loss.losses": ["cka"]})
    with pytest.raises(HilbertError, match="heads"):
        load_config(None, {"model.d": 30, "model.heads": 4})


def test_label_order_numeric_then_alphabetic():
    assert label_order(["10", "2", "1", "2"]) == ["1", "2", "10"]
    assert label_order(["mild", "control", "severe"]) == ["control", "mild", "severe"]
    assert label_order(["1", "a"]) == ["1", "a"]


def test_position_pooling_says_where_each_detector_looks():
    """h_p holds, per detector, the position features of the segments it picks: a segment a detector picks sharply
    sets them; deleting another segment moves them only by the shift of relative positions, deleting it moves them
    far (so the pooling does not blur occlusion's ranking)."""
    from hilbert_cli.learn.layers import PositionPool, position_features

    d, S, n = 8, 11, 3
    pool = PositionPool(1, d, rank=1, n_freq=n)
    with torch.no_grad():
        pool.focus.weight.zero_()
        pool.focus.weight[0, 0, 0] = 1.0  # the detector reads audio dimension 0
        pool.focus.bias.zero_()
    X = torch.zeros(1, 1, S, d)
    X[0, 0, 8, 0] = 30.0  # segment 8 of 11 carries what it detects
    mask = torch.ones(1, 1, S, dtype=torch.bool)

    def h(m):
        return pool(X, torch.zeros_like(X), m)[0, 0]

    assert torch.allclose(h(mask), position_features(mask, n)[0, 0, 8], atol=1e-4)
    picked, other = mask.clone(), mask.clone()
    picked[0, 0, 8], other[0, 0, 2] = False, False
    assert (h(other) - h(mask)).norm() < 0.5 * (h(picked) - h(mask)).norm()
    assert torch.allclose(h(other), position_features(other, n)[0, 0, 8], atol=1e-4)  # 7 of 10 now
    assert (h(picked) - position_features(picked, n)[0, 0][picked[0, 0]].mean(0)).norm() < 1e-4  # none picked: the average
