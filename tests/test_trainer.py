"""The one training loop: k folds trained together equal each fold trained alone; per-fold noise; devices; the API."""
import numpy as np
import pytest
import torch

from hilbert_cli import HilbertClassifier, cross_validate
from hilbert_cli.device import resolve_device
from hilbert_cli.errors import ConfigError, DataError, DeviceError, NotFittedError
from hilbert_cli.evaluation.crossval import cross_val_predict, plan_folds
from hilbert_cli.evaluation.folds import make_folds
from hilbert_cli.learn.config import CONFIGURATIONS, load_config
from hilbert_cli.learn.data import synthetic_embeddings
from hilbert_cli.learn.trainer import fold_seeds, predict_folds, train_folds

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = {"model.d": 8, "model.heads": 2, "model.d_z": 8, "model.experts": 3, "model.expert_hidden": [8, 8],
         "model.head_hidden": [8, 4], "train.batch_size": 8}


def _docs(n=40, seed=0):
    return synthetic_embeddings(n, 3, segments=(3, 9), d_audio=10, d_text=8, signal=1.0, seed=seed)


def _sequential(cfg, A, T, y, folds, groups=None, dtype=torch.float64):
    """The reference: each fold trained alone (F = 1) with its own seed, then its test documents predicted."""
    seeds = fold_seeds(cfg.train.seed, folds.k)
    plans = plan_folds(folds, y, groups, cfg, seeds)
    proba = np.zeros((len(y), 3))
    best, run = [], []
    for plan, seed in zip(plans, seeds):
        r = train_folds(cfg, A, T, y, 3, [plan], [seed], dtype=dtype)
        out = predict_folds(r.model, A, T, [plan.test])[0]
        proba[plan.test] = torch.softmax(out["logits"].double(), -1).numpy()
        best.append(r.best_epoch[0])
        run.append(r.epochs_run[0])
    return proba, best, run


@pytest.mark.parametrize("configuration", ["hilbert", "transfer-moe", "contrastive-moe"])
@pytest.mark.parametrize("stopping", [{"train.epochs": 4}, {"train.epochs": 25, "train.patience": 2, "train.lr": 0.01,
                                       "train.val_fraction": 0.2, "train.lr_schedule": "constant", "train.smoothing": 0.3}],
                         ids=["all-epochs", "early-stop"])
def test_folds_together_equal_each_fold_alone_in_float64_with_dropout(configuration, stopping):
    A, T, y = _docs()
    cfg = load_config(None, {**SMALL, "configuration": configuration, "model.dropout": 0.3, **stopping})
    folds = make_folds(y, k=4, seed=0)
    together = cross_val_predict(cfg, A, T, y, 3, folds, dtype=torch.float64)
    proba, best, run = _sequential(cfg, A, T, y, folds)
    assert together.best_epoch == best and together.epochs_run == run
    if "train.patience" in stopping:  # folds dropped from the stacked state one by one, the rest carrying on
        assert len(set(run)) > 1 and min(run) < 25
    np.testing.assert_allclose(together.proba, proba, atol=1e-6)


def test_a_folds_predictions_do_not_depend_on_other_folds_labels():
    """The leak the shared dropout mask had: flipping labels in fold 1's test part must not move fold 0."""
    A, T, y = _docs()
    cfg = load_config(None, {**SMALL, "train.epochs": 5, "model.dropout": 0.2})
    folds = make_folds(y, k=4, seed=0)
    base = cross_val_predict(cfg, A, T, y, 3, folds, dtype=torch.float64).proba
    y2 = y.copy()
    test0, test1 = folds.split(0)[1], folds.split(1)[1]
    y2[test1] = (y2[test1] + 1) % 3  # fold 0 trains on these documents, so only fold 0's *own* data changes ...
    flipped = cross_val_predict(cfg, A, T, y2, 3, folds, dtype=torch.float64).proba
    y3 = y.copy()
    y3[test0] = (y3[test0] + 1) % 3  # ... while fold 0's test labels are seen by every other fold only
    other = cross_val_predict(cfg, A, T, y3, 3, folds, dtype=torch.float64).proba
    assert not np.allclose(flipped[test0], base[test0])  # fold 0's training data changed: it moves
    np.testing.assert_allclose(other[test0], base[test0], atol=1e-9)  # other folds' data changed: fold 0 does not


def test_dropout_masks_are_drawn_per_fold():
    from hilbert_cli.learn.layers import FoldNoise

    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    m = FoldNoise(gens, [3, 2], [5, 4]).mask(torch.ones(2, 3, 5, 6), 0.5, seq=True)
    assert not torch.equal(m[0, :2, :4], m[1, :2, :4])  # independent folds
    assert (m[1, 2:] == 0).all() and (m[1, :, 4:] == 0).all()  # fold 1's padding gets no mask values
    alone = FoldNoise([torch.Generator().manual_seed(2)], [2], [4]).mask(torch.ones(1, 2, 4, 6), 0.5, seq=True)
    assert torch.equal(alone[0], m[1, :2, :4])  # the same mask as fold 1 alone


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_every_registry_entry_trains_and_predicts(name):
    A, T, y = _docs(24, seed=1)
    clf = HilbertClassifier(name, {**SMALL, "train.epochs": 2}).fit(A, T, y)
    p = clf.predict_proba(A, T)
    assert p.shape == (24, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert set(clf.predict(A, T)) <= set(clf.classes_)
    ex = clf.explain(A[:2], T[:2])
    assert len(ex) == 2
    if CONFIGURATIONS[name].segment_weight == "attention":
        assert ex[0]["alpha_j"].shape == (len(A[0]),)


def test_classifier_round_trip_and_string_labels(tmp_path):
    A, T, y = _docs(30, seed=2)
    labels = np.array(["low", "mid", "high"])[y]
    clf = HilbertClassifier("hilbert", {**SMALL, "train.epochs": 3}, device="cpu", seed=3).fit(A, T, labels)
    assert list(clf.classes_) == ["high", "low", "mid"] and clf.best_epoch_ >= 1 and len(clf.history_) == 3
    p = clf.predict_proba(A, T)
    path = clf.save(tmp_path / "m.pt")
    again = HilbertClassifier.load(path)
    np.testing.assert_array_equal(again.predict_proba(A, T), p)
    assert list(again.classes_) == list(clf.classes_)


def test_classifier_errors_name_the_parameter():
    A, T, y = _docs(10)
    with pytest.raises(NotFittedError):
        HilbertClassifier().predict_proba(A, T)
    with pytest.raises(DataError) as e:
        HilbertClassifier().fit(A, T, y[:5])
    assert e.value.param == "y"
    with pytest.raises(ConfigError) as e:
        HilbertClassifier("nope").fit(A, T, y)
    assert "valid:" in str(e.value) and "hilbert" in str(e.value)
    with pytest.raises(DataError):
        HilbertClassifier().fit([a[:, :3] for a in A], T, y)  # widths differ from ... nothing: fine; shapes differ below
        HilbertClassifier().fit(A, [t[:-1] for t in T], y)


def test_cross_validate_api():
    A, T, y = _docs(36, seed=4)
    r = cross_validate(A, T, y, configurations=("transfer", "hilbert"), k=3, config={**SMALL, "train.epochs": 3})
    assert set(r.auc) == {"transfer", "hilbert"} and r.oof_proba["hilbert"].shape == (36, 3)
    assert sorted(set(r.folds.tolist())) == [0, 1, 2] and list(r.classes_) == [0, 1, 2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_stops_with_one_line():
    with pytest.raises(DeviceError) as e:
        resolve_device("cuda")
    assert "\n" not in str(e.value) and e.value.param == "device"
    with pytest.raises(DeviceError):
        HilbertClassifier(device="cuda:1").fit(*_docs(10))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trained_on_gpu_predicts_on_cpu_and_matches_folds_on_gpu(tmp_path):
    A, T, y = _docs(40)
    clf = HilbertClassifier("hilbert", {**SMALL, "train.epochs": 3}, device="cuda").fit(A, T, y)
    assert next(clf.model_.parameters()).is_cuda
    p = clf.predict_proba(A, T)
    cpu = HilbertClassifier.load(clf.save(tmp_path / "m.pt"), device="cpu")
    np.testing.assert_allclose(cpu.predict_proba(A, T), p, atol=1e-5)
    cfg = load_config(None, {**SMALL, "train.epochs": 4, "model.dropout": 0.0})
    folds = make_folds(y, k=4, seed=0)
    g = cross_val_predict(cfg, A, T, y, 3, folds, device="cuda", dtype=torch.float64).proba
    c = cross_val_predict(cfg, A, T, y, 3, folds, device="cpu", dtype=torch.float64).proba
    np.testing.assert_allclose(g, c, atol=1e-6)
