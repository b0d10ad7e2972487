"""Cross-validation with every fold of one configuration trained at once (torch.func + vmap).

The F fold models are F copies of the same module with their parameters stacked along a leading
fold dimension (`torch.func.stack_module_state`); one `vmap(functional_call)` runs all of them on
an (F, B) batch of document indices, so a training step costs one wide computation instead of F
narrow ones. Folds differ in size and stop at different epochs, so every step carries a per-fold
sample mask, and the optimiser (AdamW, written out below because torch.optim cannot skip part of
a stacked tensor) updates only the folds that had samples in the step. Everything else — the
initialisation, the inner validation split, the batch order, class weights, the loss, early
stopping — is the same as `train.fit` on each fold alone, which `cross_val_predict_sequential`
does and the tests compare against.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from .config import HilbertConfig
from .data import pad_batch
from .folds import Folds, inner_split
from .losses import class_weights_for, cross_entropy, total_loss
from .model import build_model
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


# --- the stacked optimiser --------------------------------------------------------------------

class StackedAdamW:
    """torch.optim.AdamW's update, applied per fold to parameters stacked along dim 0.

    `step(active)` updates only the folds where active[f] is True (their own step counts, moments,
    weight decay), so a fold with no samples in a step is left exactly as it was."""

    def __init__(self, params: dict[str, torch.Tensor], lr: float, weight_decay: float,
                 betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.wd, self.betas, self.eps = params, lr, weight_decay, betas, eps
        n_folds = next(iter(params.values())).shape[0]
        self.steps = torch.zeros(n_folds)
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.steps += active.to(self.steps.dtype)
        bc1 = 1 - b1 ** self.steps.clamp_min(1)
        bc2 = 1 - b2 ** self.steps.clamp_min(1)
        every = bool(active.all())
        for k, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            m, v = self.m[k], self.v[k]
            if every:  # the common case: in place, as torch.optim.AdamW does it
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v / bc2.view(shape)).sqrt_().add_(self.eps)
                p.mul_(1 - self.lr * self.wd).sub_(m / denom * (self.lr / bc1.view(shape)))
                continue
            on = active.view(shape)
            m.copy_(torch.where(on, m * b1 + g * (1 - b1), m))
            v.copy_(torch.where(on, v * b2 + g * g * (1 - b2), v))
            denom = (v / bc2.view(shape)).sqrt() + self.eps
            p_new = p * (1 - self.lr * self.wd) - (self.lr / bc1.view(shape)) * m / denom
            p.copy_(torch.where(on, p_new, p))

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def keep(self, index: torch.Tensor) -> None:
        """Drop the folds not in `index` (stopped early) from every state tensor."""
        for k in list(self.params):
            self.params[k] = self.params[k].detach()[index].requires_grad_(True)
            self.m[k], self.v[k] = self.m[k][index], self.v[k][index]
        self.steps = self.steps[index]


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
    params, buffers = stack_module_state([copy.deepcopy(model) for _ in range(n_folds)])
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    base = copy.deepcopy(model).to("meta")
    opt = StackedAdamW(params, tc.lr, tc.weight_decay)
    # class weights from each fold's fit part (all ones when off: the same as no weights)
    class_w = torch.stack([class_weights_for(Y_all[torch.as_tensor(p.fit)], n_classes) if tc.class_weights
                           else torch.ones(n_classes) for p in plans])
    gens = [torch.Generator().manual_seed(tc.seed) for _ in plans]  # each fold's own batch order, as train.fit

    def fold_loss(p, b, A, T, mask, yb, cw, smask):
        return total_loss(functional_call(base, (p, b), (A, T, mask)), yb, cw, config, mask=smask)

    def fold_logits(p, b, A, T, mask):
        return functional_call(base, (p, b), (A, T, mask))["logits"]

    train_loss = vmap(fold_loss, randomness="same")
    eval_logits = vmap(fold_logits, randomness="same")
    val_ce = vmap(cross_entropy)

    def gather(idx: torch.Tensor):
        A, T, M = A_all[idx], T_all[idx], M_all[idx]
        s = int(M.sum(-1).max().clamp_min(1))  # trim the padding every document of the step shares
        return A[..., :s, :], T[..., :s, :], M[..., :s]

    def logits_of(stacked, fold_ids: list[int], idx: torch.Tensor) -> torch.Tensor:
        """(F', W, C) eval-mode logits, folds in chunks so the gathered inputs stay small."""
        per_fold = idx.shape[1] * A_all.shape[1] * (A_all.shape[2] + T_all.shape[2]) * 4
        step = max(1, EVAL_CHUNK_BYTES // max(1, per_fold))
        out = []
        for i in range(0, len(fold_ids), step):
            sl = slice(i, i + step)
            out.append(eval_logits(_slice(stacked, sl), _select(buffers, fold_ids[sl]), *gather(idx[sl])))
        return torch.cat(out)

    alive = list(range(n_folds))  # folds still training, in the order of the stacked tensors
    best = {k: v.detach().clone() for k, v in opt.params.items()}  # indexed by original fold
    best_loss = [math.inf] * n_folds
    best_epoch = [0] * n_folds
    epochs_run = [0] * n_folds
    since_best = [0] * n_folds
    history: list[list[dict]] = [[] for _ in range(n_folds)]

    for epoch in range(1, tc.epochs + 1):
        # each fold's batches for this epoch, drawn exactly as its own train.fit would draw them
        fold_batches = [[plans[f].fit[b] for b in shuffled_batches(len(plans[f].fit), tc.batch_size, gens[f])] for f in alive]
        base.train()
        sums = {k: torch.zeros(len(alive)) for k in ("total", "ce", "con", "cka", "mi")}
        for s in range(max(len(b) for b in fold_batches)):
            idx, smask = _step_indices([b[s] if s < len(b) else None for b in fold_batches])
            total, parts = train_loss(opt.params, _select(buffers, alive), *gather(idx), Y_all[idx],
                                      class_w[alive], smask)
            opt.zero_grad()
            total.sum().backward()  # folds are independent: d(sum)/d(params_f) = d(loss_f)/d(params_f)
            opt.step(smask.any(dim=1))
            w = smask.sum(1).float()
            for k, v in (("total", total), *parts.items()):
                sums[k] += v.detach() * w

        # early stopping on each fold's validation cross-entropy (train.fit's criterion)
        base.eval()
        val_idx, val_mask = _step_indices([plans[f].val for f in alive])
        with torch.no_grad():
            vl = val_ce(logits_of(opt.params, alive, val_idx), Y_all[val_idx], class_w[alive], val_mask)
        stopped = []
        for i, f in enumerate(alive):
            epochs_run[f] = epoch
            n_fit = len(plans[f].fit)
            history[f].append({"epoch": epoch, **{k: float(v[i]) / n_fit for k, v in sums.items()},
                               "val_loss": float(vl[i])})
            if float(vl[i]) < best_loss[f] - IMPROVEMENT:
                best_loss[f], best_epoch[f], since_best[f] = float(vl[i]), epoch, 0
                for k in best:
                    best[k][f] = opt.params[k][i].detach()
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
    base.eval()
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


def _slice(tensors: dict[str, torch.Tensor], sl: slice) -> dict[str, torch.Tensor]:
    return {k: v[sl] for k, v in tensors.items()}
