"""Annealing paths between a reference q0 and an unnormalised target γ: β schedules and the path.

The geometric path π_k ∝ q0^{1-β_k} γ^{β_k}, 0 = β_0 < β_1 < … < β_K = 1, as in annealed
importance sampling (Neal 2001) and controlled Monte Carlo diffusions (Vargas, Padhy, Blessing &
Nüsken, ICLR 2024, ALGORITHMS.md §5). A schedule is a float array of length K + 1 that starts
at 0 and ends at 1; every function below returns one.

Schedules:
    linear       β_k = k / K.
    geometric    β_k = β_min^{(K-k)/(K-1)} for k ≥ 1 (log-spaced from β_min to 1): slow
                 departure from the reference; β_min = 1e-3 as in Neal (2001, §5) style AIS runs.
    cosine       β_k = (1 - cos(π k / K)) / 2: slow at both ends.
    power        β_k = (k / K)^p: p > 1 spends more steps near the reference.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SCHEDULES = ("linear", "geometric", "cosine", "power")


def _check_num_steps(num_steps):
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")


def linear_schedule(num_steps: int) -> np.ndarray:
    """β_k = k / K, k = 0..K."""
    _check_num_steps(num_steps)
    return np.linspace(0.0, 1.0, num_steps + 1)


def geometric_schedule(num_steps: int, beta_min: float = 1e-3) -> np.ndarray:
    """β_0 = 0 and β_1..β_K log-spaced from β_min to 1 (β_1 = 1 when K = 1)."""
    _check_num_steps(num_steps)
    if not (0.0 < float(beta_min) < 1.0):
        raise ValueError(f"beta_min must lie in (0, 1), got {beta_min!r}")
    if num_steps == 1:
        return np.array([0.0, 1.0])
    return np.concatenate([[0.0], np.geomspace(beta_min, 1.0, num_steps)])


def cosine_schedule(num_steps: int) -> np.ndarray:
    """β_k = (1 - cos(π k / K)) / 2."""
    _check_num_steps(num_steps)
    b = 0.5 * (1.0 - np.cos(np.pi * np.arange(num_steps + 1) / num_steps))
    b[0], b[-1] = 0.0, 1.0
    return b


def power_schedule(num_steps: int, power: float = 2.0) -> np.ndarray:
    """β_k = (k / K)^power."""
    _check_num_steps(num_steps)
    if not (float(power) > 0.0 and np.isfinite(power)):
        raise ValueError(f"power must be a finite positive number, got {power!r}")
    return np.linspace(0.0, 1.0, num_steps + 1) ** power


def make_schedule(name: str, num_steps: int, **kwargs) -> np.ndarray:
    """The schedule called ``name`` (one of SCHEDULES) with K = num_steps steps."""
    fns = {
        "linear": linear_schedule,
        "geometric": geometric_schedule,
        "cosine": cosine_schedule,
        "power": power_schedule,
    }
    if name not in fns:
        raise ValueError(f"schedule must be one of {sorted(fns)}, got {name!r}")
    return fns[name](num_steps, **kwargs)


def check_schedule(betas) -> np.ndarray:
    """Validate a user schedule: 1-D, β_0 = 0, β_K = 1, strictly increasing; return it."""
    b = np.asarray(betas, np.float64)
    if b.ndim != 1 or b.shape[0] < 2:
        raise ValueError(f"schedule must be a 1-D array of length >= 2, got shape {b.shape}")
    if b[0] != 0.0 or b[-1] != 1.0 or not np.all(np.diff(b) > 0):
        raise ValueError("schedule must increase strictly from 0 to 1")
    return b


def standard_normal_logdensity(x):
    """log N(x; 0, I) over the last axis (the reference q0 in whitened coordinates)."""
    d = x.shape[-1]
    return -0.5 * jnp.sum(x**2, axis=-1) - 0.5 * d * jnp.log(2.0 * jnp.pi).astype(x.dtype)


def standard_normal_sample(rng_key, num, dim, dtype):
    """(num, dim) draws of N(0, I)."""
    return jax.random.normal(rng_key, (num, dim), dtype)


class Reference(NamedTuple):
    """The start q0 of an annealing path, on flat positions.

    sample(rng_key, num, dim, dtype) -> (num, dim) draws of q0; logdensity(x) -> the normalised
    log q0 at one position x (dim,), so that a path's evidence estimate is that of γ.
    counted: evaluating q0 is a model evaluation (e.g. the model's prior) and is counted as a
    gradient evaluation; False for a closed form such as N(0, I).
    """

    sample: Callable
    logdensity: Callable
    counted: bool = False


STANDARD_NORMAL = Reference(standard_normal_sample, standard_normal_logdensity)


def annealed_logdensity(beta, log_target, log_reference):
    """log π̃_β = β log γ + (1 - β) log q0 (0·(-inf) taken as 0 at β = 0 is not needed: the
    callers mark non-finite targets dead before using this)."""
    return beta * log_target + (1.0 - beta) * log_reference


def annealed_score(beta, target_score, reference_score):
    """∇ log π_β = β ∇log γ + (1 - β) ∇log q0 (for q0 = N(0, I), ∇log q0(x) = -x)."""
    return beta * target_score + (1.0 - beta) * reference_score
