"""The fold-stacked forward (stacked.py) against HilbertModel run on each fold alone."""
import copy

import pytest
import torch

from hilbert_cli.learn.batched import FoldParameters
from hilbert_cli.learn.config import load_config
from hilbert_cli.learn.data import pad_batch, synthetic_embeddings
from hilbert_cli.learn.model import build_model
from hilbert_cli.learn.stacked import StackedForward

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

DA, DT, C, FOLDS = 12, 10, 3, 3


def folds_of(cfg, seed=0):
    """F models with different weights (each fold's own), their stacked parameters, and inputs."""
    torch.manual_seed(seed)
    base = build_model(cfg, DA, DT, C)
    models = [copy.deepcopy(base) for _ in range(FOLDS)]
    with torch.no_grad():
        for m in models[1:]:
            for p in m.parameters():
                p.add_(0.1 * torch.randn_like(p))
    stacked = FoldParameters(base, FOLDS)
    with torch.no_grad():
        stacked.flat.copy_(torch.stack([torch.cat([p.reshape(-1) for p in m.parameters()]) for m in models]))
    batches = []
    for f in range(FOLDS):  # each fold its own documents, of different lengths, one with no segment
        A, T, _ = synthetic_embeddings(4, C, segments=(2, 7), d_audio=DA, d_text=DT, seed=seed + f)
        A[1], T[1] = A[1][:0], T[1][:0]
        batches.append(pad_batch(A, T))
    s = max(b[0].shape[1] for b in batches)
    pad = lambda x: torch.nn.functional.pad(x, (0, 0, 0, s - x.shape[1]) if x.dim() == 3 else (0, s - x.shape[1]))
    A, T, M = (torch.stack([pad(b[i]) for b in batches]) for i in range(3))
    return models, stacked, A, T, M


@pytest.mark.parametrize("over", [
    {"configuration": "hilbert"},
    {"configuration": "contrastive-moe"},
    {"configuration": "hilbert", "model.top_k": 2, "model.heads": 4},
    {"configuration": "hilbert", "model.expert_hidden": [8], "model.head_hidden": [8]},
])
def test_stacked_forward_equals_each_fold_alone_in_float64(over):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        cfg = load_config(None, {"model.d": 16, "model.heads": 2, "model.d_z": 8, **over})
        models, stacked, A, T, M = folds_of(cfg)
        forward = StackedForward(cfg)
        forward.training = False
        out = forward(stacked.views(), A, T, M)
        for f, model in enumerate(models):
            want = model.eval()(A[f], T[f], M[f])
            assert set(out) == set(want)
            for k in want:
                torch.testing.assert_close(out[k][f], want[k], rtol=0, atol=1e-12, msg=f"{k} of fold {f}")
    finally:
        torch.set_default_dtype(old)


def test_stacked_dropout_is_on_in_training_only_and_shared_by_the_folds():
    cfg = load_config(None, {"model.d": 16, "model.heads": 2, "model.d_z": 8, "model.dropout": 0.5})
    torch.manual_seed(0)
    stacked = FoldParameters(build_model(cfg, DA, DT, C), FOLDS)  # identical folds
    A, T, _ = synthetic_embeddings(4, C, segments=(2, 7), d_audio=DA, d_text=DT, seed=0)
    A, T, M = (x.expand(FOLDS, *x.shape) for x in pad_batch(A, T))
    forward = StackedForward(cfg)
    forward.training = False
    calm = forward(stacked.views(), A, T, M)["logits"]
    forward.training = True
    noisy = forward(stacked.views(), A, T, M)["logits"]
    assert not torch.allclose(noisy, calm)
    torch.testing.assert_close(noisy[1], noisy[0])  # the same mask for every fold (as vmap's "same")
    torch.testing.assert_close(calm[1], calm[0])
