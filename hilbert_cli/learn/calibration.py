"""Temperature scaling (Guo et al. 2017): one scalar T > 0 that divides the logits, p = softmax(z / T).

T is fitted after training on held-out documents (the inner validation split, config train.calibrate)
by minimising their mean negative log-likelihood. With β = 1/T the NLL, mean(logsumexp(β z) − β z_y), is
convex in β, so a bounded 1-D search over log T (scipy's bounded Brent, deterministic) finds its minimum.
T > 1 softens over-confident probabilities, T < 1 sharpens under-confident ones; the predicted class and
every ranking (hence the AUC) stay the same. T is kept within TEMPERATURE_RANGE: a validation split that
the model separates perfectly has its NLL minimum at T -> 0, and `at_bound` then says that T was stopped
there (the split gave no information about over-confidence).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DataError

TEMPERATURE_RANGE = (0.01, 100.0)  # T is searched within these bounds
METHOD = "temperature"


@dataclass
class Temperature:
    """A fitted temperature and what it did to the held-out documents it was fitted on."""
    temperature: float
    n_documents: int  # held-out documents it was fitted on
    nll_before: float  # their mean negative log-likelihood at T = 1
    nll_after: float  # and at the fitted T
    at_bound: bool  # T is at an end of TEMPERATURE_RANGE
    method: str = METHOD

    def to_dict(self) -> dict:
        return asdict(self)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of labels y under softmax(logits / temperature)."""
    from scipy.special import logsumexp

    z = np.asarray(logits, dtype=np.float64) / temperature
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y]))


def fit_temperature(logits, y) -> Temperature:
    """The T within TEMPERATURE_RANGE that minimises the mean NLL of labels y (N,) under softmax(logits (N, C) / T)."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise DataError(f"fit_temperature: need (N, C) logits and N labels with N > 0, got shapes {z.shape} and "
                        f"{y.shape}; give the logits and labels of held-out documents.")
    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)
    r = minimize_scalar(lambda u: nll(z, y, math.exp(u)), bounds=(lo, hi), method="bounded",
                        options={"xatol": 1e-6})
    u = float(r.x)
    # the bounded search never evaluates the bounds themselves: a minimum there is taken exactly
    for end in (lo, hi):
        if nll(z, y, math.exp(end)) <= nll(z, y, math.exp(u)):
            u = end
    t = math.exp(u)
    at_bound = min(abs(u - lo), abs(u - hi)) < 1e-3
    return Temperature(t, len(y), nll(z, y), nll(z, y, t), at_bound)


def from_checkpoint(meta: dict) -> Temperature | None:
    """The calibration stored in a model file's metadata, or None (trained without train.calibrate, or a file from
    before calibration existed)."""
    c = meta.get("calibration")
    return None if not c else Temperature(**{k: c[k] for k in Temperature.__dataclass_fields__ if k in c})
