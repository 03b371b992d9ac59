"""Monte Carlo Föllmer drift in Stein form: gradient-free, log-sum-exp stable.

Reference: Huang, Jiao, Kang, Liao, Liu, Liu (2021), "Schrödinger–Föllmer sampler: sampling
without ergodicity" (the Monte Carlo estimate of the drift, their Stein-lemma form), the base of
Riel & Bischoff (arXiv 2401.17539); also ``blackjax.vi.schrodinger_follmer``. ALGORITHMS.md §4.

The Föllmer process on t ∈ [0, 1] started at X_0 = 0, dX = b(X, t) dt + dB, ends at X_1 ~ π for

    b(x, t) = E_Z[Z f(x + √s Z)] / (√s E_Z[f(x + √s Z)]),   s = 1 - t,
    f(y) = π(y) / N(y; 0, I),   so  log f(y) = log π(y) + |y|²/2  (+ a constant).

Equivalently b(x, t) = (m(x, t) - x) / s with m the mean of q(y | x) ∝ f(y) N(y; x, s I), the law
of X_1 given X_t = x. With M draws y_m = x + √s Z_m and self-normalised weights w = softmax(log f),
the estimate is Σ_m w_m Z_m / √s = (Σ_m w_m y_m - x) / s. No gradient of log π is used, and the
weights are computed from log f by log-sum-exp (log π may be -1e4 or +1e4 without overflow).
Points where log π is not finite get weight 0; if every point of a particle has weight 0 the
drift is 0 (plain Brownian step) and ``ok`` is False, so callers can mark the draw diverging.

Cost: M density evaluations per call, no gradients.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "FollmerDriftInfo",
    "log_follmer_ratio",
    "self_normalised_mean",
    "follmer_drift_from_values",
    "follmer_drift",
]


class FollmerDriftInfo(NamedTuple):
    """ess: effective sample size 1/Σw² of the weights (1 ≤ ess ≤ M); ok: some weight was finite;
    num_density_evals: density evaluations of this call."""

    ess: jax.Array
    ok: jax.Array
    num_density_evals: int


def log_follmer_ratio(logdensity, y):
    """log f(y) = log π(y) + |y|²/2 (the standard Gaussian reference removed); non-finite → -inf."""
    log_f = logdensity + 0.5 * jnp.sum(y**2, axis=-1)
    return jnp.where(jnp.isfinite(log_f), log_f, -jnp.inf)


def self_normalised_mean(log_w, y):
    """(Σ w y, ess, ok) for w = softmax(log_w) over the last axis of log_w; y is (P, d).

    log_w may be (P,) or (N, P) (one weight vector per particle). All -inf → mean 0, ok False.
    """
    top = jnp.max(log_w, axis=-1, keepdims=True)
    ok = jnp.isfinite(top[..., 0])
    w = jnp.exp(log_w - jnp.where(jnp.isfinite(top), top, 0.0))
    total = jnp.sum(w, axis=-1, keepdims=True)
    w = jnp.where(ok[..., None], w / jnp.where(total > 0, total, 1.0), 0.0)
    ess = jnp.where(ok, 1.0 / jnp.maximum(jnp.sum(w**2, axis=-1), 1e-30), 0.0)
    return w @ y, ess, ok


def follmer_drift_from_values(x, s, y, log_f):
    """Stein-form drift at x (d,) with s = 1 - t from proposals y (M, d) ~ N(x, s I) and their
    log f (M,). Returns (drift (d,), ess, ok)."""
    mean, ess, ok = self_normalised_mean(log_f, y)
    drift = jnp.where(ok, (mean - x) / s, jnp.zeros_like(x))
    return drift, ess, ok


def follmer_drift(rng_key, x, t, logdensity_fn: Callable, num_samples: int):
    """Monte Carlo Föllmer drift b(x, t) from ``num_samples`` fresh Gaussian draws.

    Args:
        rng_key: PRNG key. x: position (d,). t: time in [0, 1). logdensity_fn: log π on flat
        arrays (d,), unnormalised. num_samples: M, draws (density evaluations) per call.
    Returns:
        (drift (d,), FollmerDriftInfo).
    """
    s = 1.0 - t
    z = jax.random.normal(rng_key, (num_samples,) + x.shape, x.dtype)
    y = x + jnp.sqrt(s) * z
    log_f = log_follmer_ratio(jax.vmap(logdensity_fn)(y), y)
    drift, ess, ok = follmer_drift_from_values(x, s, y, log_f)
    return drift, FollmerDriftInfo(ess, ok, num_samples)
