"""Cross-validation with every fold of one configuration trained at once.

The F fold models are F copies of the same module whose parameters live in one (F, P) tensor, a
row per fold (FoldParameters). A training step runs all F models on an (F, B) batch of document
indices in one wide computation instead of F narrow ones: the encoder configurations through
stacked.py (the forward written with an explicit fold dimension), the transfer baselines through
`vmap(functional_call)`. Folds differ in size and stop at different epochs, so every step carries a
per-fold sample mask, and the optimiser (torch's fused AdamW, one parameter per fold) updates only
the folds that had samples in the step. Everything else — the initialisation, the inner validation
split, the batch order, class weights, the loss, early stopping — is the same as `train.fit` on each
fold alone, which `cross_val_predict_sequential` does and the tests compare against.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch.func import functional_call, vmap

from .config import HilbertConfig
from .data import pad_batch
from ..evaluation.folds import Folds, inner_split
from .losses import class_weights_for, cross_entropy, total_loss
from .model import build_model
from .stacked import StackedForward
from . import train as train_mod
from .train import shuffled_batches  # the same batch order as train.fit, by construction

EVAL_CHUNK_BYTES = 64 * 2**20  # evaluate folds in chunks so the gathered inputs stay below this
IMPROVEMENT = 1e-6  # a validation loss must drop by more than this to count (as train.fit)


@dataclass
class FoldPlan:
    """Indices into the task's documents for one outer fold."""
    fit: np.ndarray  # trained on
    val: np.ndarray  # early stopping (part of the outer training fold, never the test fold)
    test: np.ndarray  # predicted


@dataclass
class CVResult:
    proba: np.ndarray  # (N, C) out-of-fold class probabilities
    best_epoch: list[int]  # per fold: the epoch whose weights were kept (1-based)
    epochs_run: list[int]  # per fold
    history: list[list[dict]] = field(default_factory=list)  # per fold, per epoch: losses


def plan_folds(folds: Folds, y: np.ndarray, groups, config: HilbertConfig) -> list[FoldPlan]:
    """Each outer fold's fit/validation split, exactly as `train.fit` splits the training fold."""
    tc = config.train
    plans = []
    for train_idx, test_idx in folds.splits():
        if tc.val_fraction > 0:
            g = None if groups is None else np.asarray(groups)[train_idx]
            fit, val = inner_split(np.asarray(y)[train_idx], g, seed=tc.seed, val_fraction=tc.val_fraction)
        else:
            fit = val = np.arange(len(train_idx))
        plans.append(FoldPlan(train_idx[fit], train_idx[val], test_idx))
    return plans


# --- the stacked parameters and their optimiser ----------------------------------------------

class FoldParameters:
    """Every parameter of F fold models in one (F, P) leaf tensor; `views()` gives the per-name
    (F, *shape) views the forward takes. One row per fold is what lets FoldAdamW treat each fold
    as one tensor with its own step count."""

    def __init__(self, model: torch.nn.Module, n_folds: int):
        named = list(model.named_parameters())
        self.names = [k for k, _ in named]
        self.shapes = [tuple(v.shape) for _, v in named]
        self.sizes = [v.numel() for _, v in named]
        one = torch.cat([v.detach().reshape(-1) for _, v in named])  # every fold starts the same
        self.flat = one.expand(n_folds, -1).clone().requires_grad_(True)

    def views(self, flat: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        flat = self.flat if flat is None else flat
        parts = flat.split(self.sizes, dim=1)
        return {k: t.view(flat.shape[0], *shape) for k, t, shape in zip(self.names, parts, self.shapes)}


class FoldAdamW:
    """torch.optim.AdamW (the fused kernel: one pass over all folds) with each fold's row of the
    flat parameters as its own parameter, so each fold keeps its own step count and moments, and
    `step(active)` leaves a fold with no samples in the step exactly as it was (no gradient, no
    update). Per fold this is the same update as train.fit's torch.optim.AdamW."""

    def __init__(self, params: FoldParameters, lr: float, weight_decay: float):
        self.params, self.lr, self.wd = params, lr, weight_decay
        self._build(states=None)

    def _build(self, states: Optional[list]) -> None:
        self.rows = list(self.params.flat.detach().unbind(0))  # share storage with the flat leaf
        self.opt = torch.optim.AdamW(self.rows, lr=self.lr, weight_decay=self.wd, fused=True)
        for row, state in zip(self.rows, states or []):
            if state:
                self.opt.state[row] = state

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        grad = self.params.flat.grad
        for f, row in enumerate(self.rows):
            row.grad = grad[f] if active[f] else None
        self.opt.step()

    def zero_grad(self) -> None:
        self.params.flat.grad = None

    def keep(self, index: torch.Tensor) -> None:
        """Drop the folds not in `index` (stopped early), keeping the others' optimiser state."""
        states = [self.opt.state.get(self.rows[i]) for i in index.tolist()]
        self.params.flat = self.params.flat.detach()[index].requires_grad_(True)
        self._build(states)


# --- the trainer --------------------------------------------------------------------------------

def cross_val_predict_batched(
    config: HilbertConfig, A_list, T_list, y, n_classes: int, folds: Folds, groups=None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> CVResult:
    """Out-of-fold probabilities of `config` on every document, all folds trained together."""
    y_np = np.asarray(y, dtype=np.int64)
    plans = plan_folds(folds, y_np, groups, config)
    A_all, T_all, M_all = pad_batch(A_list, T_list)
    Y_all = torch.as_tensor(y_np)
    tc = config.train
    n_folds = len(plans)

    torch.manual_seed(tc.seed)  # as train.fit: every fold starts from the same seeded initialisation
    model = build_model(config, A_all.shape[-1], T_all.shape[-1], n_classes)
    stacked = FoldParameters(model, n_folds)
    buffers = {k: b.expand(n_folds, *b.shape).clone() for k, b in model.named_buffers()}
    opt = FoldAdamW(stacked, tc.lr, tc.weight_decay)
    # class weights from each fold's fit part (all ones when off: the same as no weights)
    class_w = torch.stack([class_weights_for(Y_all[torch.as_tensor(p.fit)], n_classes) if tc.class_weights
                           else torch.ones(n_classes) for p in plans])
    gens = [torch.Generator().manual_seed(tc.seed) for _ in plans]  # each fold's own batch order, as train.fit

    forward = _fold_forward(config, model)
    fold_losses = vmap(lambda out, yb, cw, smask: total_loss(out, yb, cw, config, mask=smask))
    val_ce = vmap(cross_entropy)

    gather = _Gather(A_all, T_all, M_all)

    def logits_of(flat: torch.Tensor, fold_ids: list[int], idx: torch.Tensor) -> torch.Tensor:
        """(F', W, C) eval-mode logits, folds in chunks so the gathered inputs stay small."""
        per_fold = idx.shape[1] * A_all.shape[1] * (A_all.shape[2] + T_all.shape[2]) * 4
        step = max(1, EVAL_CHUNK_BYTES // max(1, per_fold))
        out = []
        for i in range(0, len(fold_ids), step):
            sl = slice(i, i + step)
            out.append(forward(stacked.views(flat[sl]), _select(buffers, fold_ids[sl]), *gather(idx[sl]), False)["logits"])
        return torch.cat(out)

    alive = list(range(n_folds))  # folds still training, in the order of the stacked tensors
    best = stacked.flat.detach().clone()  # (n_folds, P), indexed by original fold
    best_loss = [math.inf] * n_folds
    best_epoch = [0] * n_folds
    epochs_run = [0] * n_folds
    since_best = [0] * n_folds
    history: list[list[dict]] = [[] for _ in range(n_folds)]

    for epoch in range(1, tc.epochs + 1):
        # each fold's batches for this epoch, drawn exactly as its own train.fit would draw them
        fold_batches = [[plans[f].fit[b] for b in shuffled_batches(len(plans[f].fit), tc.batch_size, gens[f])] for f in alive]
        sums = {k: torch.zeros(len(alive)) for k in ("total", "ce", "con", "cka", "mi")}
        for s in range(max(len(b) for b in fold_batches)):
            idx, smask = _step_indices([b[s] if s < len(b) else None for b in fold_batches])
            out = forward(stacked.views(), _select(buffers, alive), *gather(idx), True)
            total, parts = fold_losses(out, Y_all[idx], class_w[alive], smask)
            opt.zero_grad()
            total.sum().backward()  # folds are independent: d(sum)/d(params_f) = d(loss_f)/d(params_f)
            opt.step(smask.any(dim=1))
            w = smask.sum(1).float()
            for k, v in (("total", total), *parts.items()):
                sums[k] += v.detach() * w

        # early stopping on each fold's validation cross-entropy (train.fit's criterion)
        val_idx, val_mask = _step_indices([plans[f].val for f in alive])
        with torch.no_grad():
            vl = val_ce(logits_of(stacked.flat.detach(), alive, val_idx), Y_all[val_idx], class_w[alive], val_mask)
        stopped = []
        for i, f in enumerate(alive):
            epochs_run[f] = epoch
            n_fit = len(plans[f].fit)
            history[f].append({"epoch": epoch, **{k: float(v[i]) / n_fit for k, v in sums.items()},
                               "val_loss": float(vl[i])})
            if float(vl[i]) < best_loss[f] - IMPROVEMENT:
                best_loss[f], best_epoch[f], since_best[f] = float(vl[i]), epoch, 0
                best[f] = stacked.flat[i].detach()
            else:
                since_best[f] += 1
                if since_best[f] >= tc.patience:
                    stopped.append(f)
        if progress is not None:
            progress(epoch, tc.epochs)
        if stopped:
            keep = [i for i, f in enumerate(alive) if f not in stopped]
            alive = [alive[i] for i in keep]
            if not alive:
                break
            opt.keep(torch.tensor(keep, dtype=torch.long))

    # out-of-fold probabilities, each fold with the weights of its best validation epoch
    test_idx, _ = _step_indices([p.test for p in plans])
    with torch.no_grad():
        proba = torch.softmax(logits_of(best, list(range(n_folds)), test_idx), dim=-1).numpy()
    out = np.zeros((len(y_np), n_classes))
    for f, p in enumerate(plans):
        out[p.test] = proba[f, : len(p.test)]
    return CVResult(out, best_epoch, epochs_run, history)


def cross_val_predict_sequential(
    config: HilbertConfig, A_list, T_list, y, n_classes: int, folds: Folds, groups=None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> CVResult:
    """The reference: `train.fit` on each training fold in turn, then predict its test fold."""
    y_np = np.asarray(y, dtype=np.int64)
    out = np.zeros((len(y_np), n_classes))
    best_epoch, epochs_run, history = [], [], []
    for f, (train_idx, test_idx) in enumerate(folds.splits()):
        g = None if groups is None else np.asarray(groups)[train_idx]
        fit = train_mod.fit(config, [A_list[i] for i in train_idx], [T_list[i] for i in train_idx],
                            y_np[train_idx], n_classes, groups=g)
        out[test_idx] = train_mod.predict_proba(fit.model, [A_list[i] for i in test_idx], [T_list[i] for i in test_idx])
        best_epoch.append(fit.best_epoch)
        epochs_run.append(len(fit.history))
        history.append(fit.history)
        if progress is not None:
            progress(f + 1, folds.k)
    return CVResult(out, best_epoch, epochs_run, history)


# --- helpers ----------------------------------------------------------------------------------

def _fold_forward(config: HilbertConfig, model: torch.nn.Module) -> Callable[..., dict]:
    """forward(params, buffers, A, T, mask, training) -> the model's outputs, each (F, ...)."""
    if config.uses_encoders:  # the expensive configurations: an explicit fold dimension (stacked.py)
        stacked_forward = StackedForward(config)

        def forward(p, b, A, T, mask, training: bool) -> dict:
            stacked_forward.training = training
            return stacked_forward(p, A, T, mask)
        return forward

    base = copy.deepcopy(model).to("meta")  # the transfer baselines: small, vmap is fast enough
    vmapped = vmap(lambda p, b, A, T, mask: functional_call(base, (p, b), (A, T, mask)), randomness="same")

    def forward(p, b, A, T, mask, training: bool) -> dict:
        base.train(training)
        return vmapped(p, b, A, T, mask)
    return forward


def _step_indices(per_fold: list) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, W) document indices and the (F, W) mask of real ones; None or short rows are padded."""
    width = max(1, max((len(r) for r in per_fold if r is not None), default=1))
    idx = torch.zeros(len(per_fold), width, dtype=torch.long)
    mask = torch.zeros(len(per_fold), width, dtype=torch.bool)
    for f, r in enumerate(per_fold):
        if r is not None and len(r):
            idx[f, : len(r)] = torch.as_tensor(np.asarray(r), dtype=torch.long)
            mask[f, : len(r)] = True
    return idx, mask


def _select(tensors: dict[str, torch.Tensor], folds: list[int]) -> dict[str, torch.Tensor]:
    index = torch.tensor(folds, dtype=torch.long)
    return {k: v[index] for k, v in tensors.items()}


class _Gather:
    """(F, W) document indices -> the (F, W, S', ·) inputs A, T and mask, S' trimmed to the longest
    document of the step. The large A and T copies go into one grow-only buffer each, reused from
    step to step (a view of its front for smaller steps): a fresh 50 MB tensor per step costs more in
    page faults (~10 ms) than the copy itself (~1.5 ms). Reuse is safe because a step's graph is freed
    by its backward, and an evaluation chunk's logits are computed, before the next gather."""

    def __init__(self, A_all: torch.Tensor, T_all: torch.Tensor, M_all: torch.Tensor):
        self.A_all, self.T_all, self.M_all = A_all, T_all, M_all
        self.lengths = M_all.sum(-1)
        self.buffers = {"A": torch.empty(0, dtype=A_all.dtype), "T": torch.empty(0, dtype=T_all.dtype)}

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
            self.buffers[name] = torch.empty(n, dtype=X.dtype)
        src = X if s == X.shape[1] else X[:, :s]
        return torch.index_select(src, 0, flat, out=self.buffers[name][:n].view(shape))
