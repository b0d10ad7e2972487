"""The one training loop: F fold models trained together, each with its own data, noise and stopping.

`hilbert train` runs it with F = 1 (fit on the task's documents, early stopping on an inner
validation split); cross-validation with F = k (fold f fits on its training part and stops on its
own inner split). Per fold: its documents and batch order, its dropout masks (layers.FoldNoise), its
class weights, its AdamW state and step count, its early stopping and best weights. So fold f
trained among k folds gives the predictions it would give trained alone with the same seed
(tests/test_trainer.py checks it to 1e-6 in float64, dropout on).

Mechanics: all parameters live in one (F, P) leaf tensor, a row per fold (FoldParameters); the
forward is `functional_call(model, views)`, the losses are vmapped over folds with per-fold sample
masks, and FoldAdamW (torch's fused AdamW, one row per fold) updates only the folds that had
samples in a step. A fold that stops early is dropped from the stacked tensors.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.func import functional_call, vmap

from ..errors import DataError
from .losses import class_weights_for, cross_entropy, total_loss
from .calibration import Temperature, fit_temperature
from .layers import FoldNoise
from .model import FoldModel, build_model
from .registry import LOSS_COLUMNS

EVAL_CHUNK_BYTES = 64 * 2**20  # evaluate folds in chunks so the gathered inputs stay below this
IMPROVEMENT = 1e-6  # a validation loss must drop by more than this to count as better
HISTORY_KEYS = ("total", "ce", *LOSS_COLUMNS)  # per-epoch means: total, cross-entropy, each auxiliary loss


@dataclass
class FoldPlan:
    """Indices into the documents for one fold."""
    fit: np.ndarray  # trained on
    val: np.ndarray  # early stopping (may equal fit when there is no validation split)
    test: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # predicted afterwards
    cal: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # temperature fitted on (train.calibrate)


def inner_plan(y, groups, config, seed: int) -> FoldPlan:
    """Which of a training set's documents (indices into y) are fitted, validated and calibrated on (config.train):
    val_fraction > 0 -> an inner validation split (stratified, grouped) drives early stopping, and with
    train.calibrate the temperature is fitted on it too; val_fraction 0 -> no validation split (validation = the
    fitted documents), and with train.calibrate a calibration split of calibration_fraction is held out of training.
    `cal` is empty without train.calibrate, or when the documents are too few to hold any out (< 2 groups)."""
    from ..evaluation.folds import inner_split

    tc = config.train
    y = np.asarray(y, dtype=np.int64)
    every, none = np.arange(len(y)), np.zeros(0, dtype=np.int64)
    if tc.val_fraction > 0:
        fit, val = inner_split(y, groups, seed=seed, val_fraction=tc.val_fraction)
        held_out = len(fit) < len(y)  # inner_split gives fit = val = every when it cannot split
        return FoldPlan(fit, val, cal=val if tc.calibrate and held_out else none)
    if tc.calibrate:
        fit, cal = inner_split(y, groups, seed=seed, val_fraction=tc.calibration_fraction)
        if len(fit) < len(y):
            return FoldPlan(fit, fit, cal=cal)
    return FoldPlan(every, every)


@dataclass
class FoldsFit:
    model: FoldModel  # F folds, each with the weights of its best validation epoch, in eval mode
    best_epoch: list[int]  # per fold, 1-based
    epochs_run: list[int]
    history: list[list[dict]]  # per fold, per epoch
    class_weights: list[Optional[list[float]]]
    test_logits: list[torch.Tensor] = field(default_factory=list)  # per fold: eval-mode logits of plans[f].test (CPU)
    # per fold: the temperature fitted on its validation documents (train.calibrate), else None; the logits above
    # are the model's own, not divided by it
    temperatures: list[Temperature | None] = field(default_factory=list)


@contextmanager
def torch_threads(n: Optional[int]):
    """Run a block with n torch intra-op threads, restoring the previous setting afterwards (None: unchanged)."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator) -> list[np.ndarray]:
    """Shuffled, near-equal batches (array_split), so no batch is a lone document the auxiliary losses cannot use."""
    order = torch.randperm(n, generator=gen).numpy()
    return [b for b in np.array_split(order, max(1, math.ceil(n / batch_size))) if len(b)]


def fold_seeds(seed: int, k: int) -> list[int]:
    """The seeds of k cross-validation folds: the training seed for every fold, so that each fold runs exactly the
    procedure `hilbert train` runs (as scikit-learn clones one estimator with one random_state per fold). Each fold
    still draws from its own generators, so its noise never depends on the other folds. (Independent seeds per
    fold put short-trained folds' probabilities on different scales, which lowers the pooled AUC: README, "Method".)"""
    return [int(seed)] * k


def lr_factor(config, epoch: int) -> float:
    """The learning-rate multiplier of `epoch` (1-based): linear warm-up, then constant or cosine decay."""
    tc = config.train
    if tc.warmup_epochs and epoch <= tc.warmup_epochs:
        return epoch / (tc.warmup_epochs + 1)
    if tc.lr_schedule == "cosine":
        span = max(1, tc.epochs - tc.warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * (epoch - 1 - tc.warmup_epochs) / span))
    return 1.0


def train_folds(config, A_list, T_list, y, n_classes: int, plans: Sequence[FoldPlan], seeds: Sequence[int], *,
                device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32,
                val_auc: bool = False, progress: Optional[Callable[[int, int, list], None]] = None) -> FoldsFit:
    """Train len(plans) fold models of `config` together; fold f is seeded with seeds[f] (initialisation,
    batch order, dropout). `progress(epoch, epochs, records)` after every epoch (records of the live folds)."""
    y_np = np.asarray(y, dtype=np.int64)
    if len(plans) != len(seeds) or not plans:
        raise DataError(f"train_folds: need one seed per fold and at least one fold, got {len(plans)} folds, {len(seeds)} seeds.")
    tc = config.train
    n_folds = len(plans)
    A_all, T_all, M_all = (x.to(device) for x in pad_batch(A_list, T_list, dtype))
    Y_all = torch.as_tensor(y_np, device=device)

    model = build_model(config, A_all.shape[-1], T_all.shape[-1], n_classes, folds=n_folds, seeds=seeds).to(device, dtype)
    if tc.standardize:
        model.set_standardisation(*_fold_statistics(A_list, T_list, plans))
    buffers = dict(model.named_buffers())
    params = FoldParameters(model)
    opt = FoldAdamW(params, tc.lr, tc.weight_decay)
    class_w = torch.stack([class_weights_for(Y_all[torch.as_tensor(p.fit, device=device)], n_classes).to(dtype)
                           if tc.class_weights else torch.ones(n_classes, dtype=dtype, device=device) for p in plans])
    order_gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    noise_gens = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    fold_losses = vmap(lambda out, yb, cw, smask: total_loss(out, yb, cw, config, mask=smask))
    val_ce = vmap(cross_entropy)
    gather = _Gather(A_all, T_all, M_all)

    alive = list(range(n_folds))  # folds still training, in the order of the stacked rows
    best = params.flat.detach().clone()  # (n_folds, P), by original fold
    best_loss, smoothed = [math.inf] * n_folds, [None] * n_folds
    best_epoch, epochs_run, since_best = [0] * n_folds, [0] * n_folds, [0] * n_folds
    history: list[list[dict]] = [[] for _ in range(n_folds)]

    for epoch in range(1, tc.epochs + 1):
        t0 = time.perf_counter()
        opt.set_lr(tc.lr * lr_factor(config, epoch))
        model.train()
        batches = [[plans[f].fit[b] for b in shuffled_batches(len(plans[f].fit), tc.batch_size, order_gens[f])] for f in alive]
        sums = {k: torch.zeros(len(alive), dtype=dtype, device=device) for k in HISTORY_KEYS}
        for s in range(max(len(b) for b in batches)):
            idx, smask = _step_indices([b[s] if s < len(b) else None for b in batches], device)
            A, T, M = gather(idx)
            lengths = (M.sum(-1) * smask).amax(-1).tolist()  # each fold's own longest document
            model.set_noise(FoldNoise([noise_gens[f] for f in alive], smask.sum(1).tolist(), lengths))
            out = functional_call(model, (params.views(), _rows(buffers, alive)), (A, T, M))
            total, parts = fold_losses(out, Y_all[idx], class_w[alive], smask)
            opt.zero_grad()
            total.sum().backward()  # folds are independent: d(sum)/d(params_f) = d(loss_f)/d(params_f)
            opt.step(smask.any(dim=1))
            w = smask.sum(1).to(dtype)
            for k, v in (("total", total), *parts.items()):
                sums[k] += v.detach() * w
        model.set_noise(None)
        model.eval()

        val_idx, val_mask = _step_indices([plans[f].val for f in alive], device)
        with torch.no_grad():
            logits = _outputs(model, params.flat.detach(), gather, val_idx, buffers=_rows(buffers, alive))["logits"]
            vl = val_ce(logits, Y_all[val_idx], class_w[alive], val_mask).tolist()
        seconds = time.perf_counter() - t0
        stopped, records = [], []
        for i, f in enumerate(alive):
            epochs_run[f] = epoch
            n_fit = len(plans[f].fit)
            rec = {"epoch": epoch, **{k: float(sums[k][i]) / n_fit for k in HISTORY_KEYS}, "val_loss": vl[i],
                   "lr": opt.lr, "seconds": seconds}
            if val_auc:
                rec["val_auc"] = _auc(y_np[plans[f].val], torch.softmax(logits[i, :len(plans[f].val)], -1))
            history[f].append(rec)
            records.append(rec)
            smoothed[f] = vl[i] if smoothed[f] is None else tc.smoothing * smoothed[f] + (1 - tc.smoothing) * vl[i]
            if epoch < tc.min_epochs:
                continue
            if smoothed[f] < best_loss[f] - IMPROVEMENT:
                best_loss[f], best_epoch[f], since_best[f] = smoothed[f], epoch, 0
                best[f] = params.flat[i].detach()
            else:
                since_best[f] += 1
                if since_best[f] >= tc.patience:
                    stopped.append(f)
        if progress is not None:
            progress(epoch, tc.epochs, records)
        if stopped:
            keep = [i for i, f in enumerate(alive) if f not in stopped]
            alive = [alive[i] for i in keep]
            if not alive:
                break
            opt.keep(torch.tensor(keep, dtype=torch.long, device=device))

    params.load_into(model, best)
    model.eval()
    test_logits = []
    if any(len(p.test) for p in plans):  # predicted here, on the inputs already padded on the device
        test_idx, _ = _step_indices([p.test for p in plans], device)
        with torch.no_grad():
            logits = _outputs(model, best, gather, test_idx, buffers=buffers)["logits"]
        test_logits = [logits[f, :len(p.test)].cpu() for f, p in enumerate(plans)]
    temperatures: list[Temperature | None] = [None] * n_folds
    if tc.calibrate:  # each fold's best weights on its own held-out calibration documents
        if any(len(p.cal) == 0 for p in plans):
            raise DataError("train.calibrate: a training set is too small to hold documents out for the temperature "
                            "(fewer than 2 subjects); label more documents or turn train.calibrate off.",
                            param="train.calibrate")
        cal_idx, _ = _step_indices([p.cal for p in plans], device)
        with torch.no_grad():
            logits = _outputs(model, best, gather, cal_idx, buffers=buffers)["logits"]
        temperatures = [fit_temperature(logits[f, :len(p.cal)].double().cpu().numpy(), y_np[p.cal])
                        for f, p in enumerate(plans)]
    cws = [class_w[f].tolist() if tc.class_weights else None for f in range(n_folds)]
    return FoldsFit(model, best_epoch, epochs_run, history, cws, test_logits, temperatures)


@torch.no_grad()
def predict_folds(model: FoldModel, A_list, T_list, index: Sequence[np.ndarray], *, device=None,
                  keys: Sequence[str] = ("logits",)) -> list[dict]:
    """Eval-mode outputs of fold f on documents index[f], for every fold: one dict per fold of (n_f, ...) tensors."""
    device = device or next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    model.eval()
    A_all, T_all, M_all = (x.to(device) for x in pad_batch(A_list, T_list, dtype))
    idx, _ = _step_indices(list(index), device)
    gather = _Gather(A_all, T_all, M_all)
    flat = FoldParameters(model).flat.detach()
    outs = _outputs(model, flat, gather, idx, keys=keys)
    return [{k: outs[k][f, :len(index[f])].cpu() for k in keys} for f in range(len(index))]


# --- the stacked parameters and their optimiser ----------------------------------------------

class FoldParameters:
    """Every parameter of an F-fold model in one (F, P) leaf tensor; `views()` gives the per-name
    (F, *shape) views the forward takes. One row per fold is what lets FoldAdamW treat each fold as one
    tensor with its own step count."""

    def __init__(self, model: torch.nn.Module):
        self.layout = ParameterLayout(model)
        self.flat = torch.cat([v.detach().reshape(v.shape[0], -1) for v in model.parameters()], dim=1).requires_grad_(True)

    def views(self, flat: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        return self.layout(self.flat if flat is None else flat)

    @torch.no_grad()
    def load_into(self, model: torch.nn.Module, flat: torch.Tensor) -> None:
        views = self.views(flat)
        for name, p in model.named_parameters():
            p.copy_(views[name])


class FoldAdamW:
    """torch.optim.AdamW (the fused kernel where the device has one) with each fold's row of the flat
    parameters as its own parameter, so each fold keeps its own step count and moments, and
    `step(active)` leaves a fold with no samples in the step exactly as it was."""

    def __init__(self, params: FoldParameters, lr: float, weight_decay: float):
        self.params, self.lr, self.wd = params, lr, weight_decay
        self._build(states=None)

    def _build(self, states: Optional[list]) -> None:
        self.rows = list(self.params.flat.detach().unbind(0))  # share storage with the flat leaf
        fused = self.params.flat.device.type in ("cpu", "cuda", "mps")
        self.opt = torch.optim.AdamW(self.rows, lr=self.lr, weight_decay=self.wd, fused=fused)
        for row, state in zip(self.rows, states or []):
            if state:
                self.opt.state[row] = state

    def set_lr(self, lr: float) -> None:
        self.lr = lr
        for group in self.opt.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        grad = self.params.flat.grad
        for f, (row, on) in enumerate(zip(self.rows, active.tolist())):
            row.grad = grad[f] if on else None
        self.opt.step()

    def zero_grad(self) -> None:
        self.params.flat.grad = None

    def keep(self, index: torch.Tensor) -> None:
        """Drop the folds not in `index` (stopped early), keeping the others' optimiser state."""
        states = [self.opt.state.get(self.rows[i]) for i in index.tolist()]
        self.params.flat = self.params.flat.detach()[index].requires_grad_(True)
        self._build(states)


# --- helpers ----------------------------------------------------------------------------------

def pad_batch(A_list, T_list, dtype: torch.dtype = torch.float32):
    from .data import pad_batch as pad

    A, T, M = pad(A_list, T_list)
    return A.to(dtype), T.to(dtype), M


def _rows(buffers: dict, folds: list[int]) -> dict:
    if len(folds) == next(iter(buffers.values())).shape[0]:
        return buffers
    index = torch.tensor(folds, dtype=torch.long, device=next(iter(buffers.values())).device)
    return {k: v.index_select(0, index) for k, v in buffers.items()}


def _fold_statistics(A_list, T_list, plans) -> tuple[np.ndarray, ...]:
    """Per fold: mean and standard deviation of every audio and text feature over the segments of its fit documents."""
    stats = []
    for p in plans:
        a = np.concatenate([np.asarray(A_list[i], dtype=np.float64) for i in p.fit])
        t = np.concatenate([np.asarray(T_list[i], dtype=np.float64) for i in p.fit])
        stats.append((a.mean(0), a.std(0), t.mean(0), t.std(0)))
    return tuple(np.stack(x) for x in zip(*stats))


def _outputs(model, flat, gather, idx, keys=("logits",), buffers=None) -> dict:
    """Eval-mode outputs (the given keys, each (F, W, ...)) of the folds in `flat` on (F, W) indices, folds in
    chunks so the gathered inputs stay small."""
    per_fold = idx.shape[1] * gather.A_all.shape[1] * (gather.A_all.shape[2] + gather.T_all.shape[2]) * 4
    step = max(1, EVAL_CHUNK_BYTES // max(1, per_fold))
    views_of = ParameterLayout(model)
    outs: dict[str, list] = {k: [] for k in keys}
    for i in range(0, flat.shape[0], step):
        bufs = dict(model.named_buffers()) if buffers is None else buffers
        out = functional_call(model, (views_of(flat[i:i + step]), {k: v[i:i + step] for k, v in bufs.items()}),
                              gather(idx[i:i + step]))
        for k in keys:
            outs[k].append(out[k])
    return {k: torch.cat(v) for k, v in outs.items()}


class ParameterLayout:
    """Where each of a fold model's parameters lies in a flat (F, P) tensor: `layout(flat)` gives the per-name
    (F, *shape) views that functional_call takes."""

    def __init__(self, model):
        named = list(model.named_parameters())
        self.names = [k for k, _ in named]
        self.shapes = [tuple(v.shape[1:]) for _, v in named]
        self.sizes = [math.prod(s) for s in self.shapes]

    def __call__(self, flat):
        parts = flat.split(self.sizes, dim=1)
        return {k: t.view(flat.shape[0], *shape) for k, t, shape in zip(self.names, parts, self.shapes)}


def _auc(y_true: np.ndarray, proba: torch.Tensor) -> float:
    from ..evaluation.metrics import roc_auc

    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(roc_auc(y_true, proba.double().cpu().numpy()))


def _step_indices(per_fold: list, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, W) document indices and the (F, W) mask of real ones; None or short rows are padded."""
    width = max(1, max((len(r) for r in per_fold if r is not None), default=1))
    idx = torch.zeros(len(per_fold), width, dtype=torch.long)
    mask = torch.zeros(len(per_fold), width, dtype=torch.bool)
    for f, r in enumerate(per_fold):
        if r is not None and len(r):
            idx[f, : len(r)] = torch.as_tensor(np.asarray(r), dtype=torch.long)
            mask[f, : len(r)] = True
    return idx.to(device), mask.to(device)


class _Gather:
    """(F, W) document indices -> the (F, W, S', ·) inputs A, T and mask, S' trimmed to the longest
    document of the step. The large A and T copies go into one grow-only buffer each, reused from
    step to step (a view of its front for smaller steps): a fresh 50 MB tensor per step costs more in
    page faults than the copy itself. Reuse is safe because a step's graph is freed by its backward,
    and an evaluation chunk's outputs are computed, before the next gather."""

    def __init__(self, A_all: torch.Tensor, T_all: torch.Tensor, M_all: torch.Tensor):
        self.A_all, self.T_all, self.M_all = A_all, T_all, M_all
        self.lengths = M_all.sum(-1)
        self.buffers = {"A": A_all.new_empty(0), "T": T_all.new_empty(0)}

    def __call__(self, idx: torch.Tensor):
        flat = idx.reshape(-1)
        s = int(self.lengths[flat].max().clamp_min(1))  # trim the padding every document shares
        return (self._take(self.A_all, flat, s, "A").view(*idx.shape, s, -1),
                self._take(self.T_all, flat, s, "T").view(*idx.shape, s, -1),
                self.M_all[flat, :s].view(*idx.shape, s))

    def _take(self, X: torch.Tensor, flat: torch.Tensor, s: int, name: str) -> torch.Tensor:
        shape = (len(flat), s, X.shape[-1])
        n = math.prod(shape)
        if self.buffers[name].numel() < n:
            self.buffers[name] = X.new_empty(n)
        src = X if s == X.shape[1] else X[:, :s]
        return torch.index_select(src, 0, flat, out=self.buffers[name][:n].view(shape))
