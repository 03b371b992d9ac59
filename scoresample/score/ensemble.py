"""Pooled (ensemble) Föllmer drift: the population shares its density evaluations.

Which estimator this is. Riel & Bischoff, "Enhancing score-based sampling methods with ensembles"
(arXiv 2401.17539; v2 "Gradient-free score-based sampling methods with ensembles", Applied
Mathematical Modelling 2025) estimate reverse-diffusion (Föllmer) drifts gradient-free "from the
collective dynamics of particle ensembles". The stored copies of the paper available while this
was written gave its abstract and introduction only, not the estimator's equations, so the exact
form of the paper's ensemble estimator could NOT be confirmed. What is implemented here is the
pooled estimator written down in ALGORITHMS.md §4 (a design reconstruction): a balance-heuristic
multiple-importance-sampling estimate of the same Föllmer drift as ``scoresample.score.follmer``
(Huang et al. 2021, confirmed against ``blackjax.vi.schrodinger_follmer``), which it reduces to
for a population of one. Name variants after the paper only once that is checked.

The estimator. Particles x_1..x_N at time t (s = 1 - t) each draw M proposals
y ~ N(x_i, s I); the P = N·M pooled points y_p come from the mixture q(y) = (1/N) Σ_k N(y; x_k, s).
Particle j's drift needs the mean of q_j(y) ∝ f(y) N(y; x_j, s) (f = π / N(0, I)), so every
pooled point gets, for particle j, the importance weight

    w_jp ∝ f(y_p) N(y_p; x_j, s) / ((1/N) Σ_k N(y_p; x_k, s)),

self-normalised over p; the drift is (Σ_p w_jp y_p - x_j) / s. For a particle far from all the
others the weights of other particles' points vanish and the estimate is its own M-point Föllmer
estimate; for particles close together (early times, or particles in one mode) each uses up to
N·M points at the cost of M, which is where the variance reduction comes from. All weights are
handled in log space (log-sum-exp); points with non-finite log π get weight 0.

Cost: M density evaluations per particle per call, no gradients; O(N² M d) arithmetic for the
(N, P) weight matrix (pairwise squared distances by one matrix product).

Measured (benchmarks/results/ensemble.md, N = 256, 32 Euler steps, same whitening): with M = 4
proposals per particle and step the pooled drift gives mode-weight errors of 0.014 (2-D, 4 modes)
and ≤ 0.012 (two modes, d = 8–32), where the per-particle estimator at the same M gives
0.07–0.15 and needs about 6× the evaluations (BlackJAX's, M = 24) to match it. On a Gaussian
population (tests/test_ensemble.py) its rms drift error is about 17× smaller than per particle.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from scoresample.score.follmer import FollmerDriftInfo, log_follmer_ratio, self_normalised_mean

__all__ = ["pooled_log_weights", "pooled_drift_from_values", "pooled_drift"]


def _neg_half_sq_dist(x, y, s):
    """-|y_p - x_j|² / (2 s) as an (N, P) matrix, via |y|² - 2 x·y + |x|²."""
    sq = jnp.sum(x**2, -1)[:, None] - 2.0 * x @ y.T + jnp.sum(y**2, -1)[None, :]
    return -0.5 * jnp.maximum(sq, 0.0) / s


def pooled_log_weights(x, s, y, log_f):
    """Unnormalised balance-heuristic log weights (N, P) of pooled points y (P, d) for the
    particles x (N, d): log f(y_p) + log N(y_p; x_j, s) - log mean_k N(y_p; x_k, s)."""
    n = x.shape[0]
    log_k = _neg_half_sq_dist(x, y, s)
    log_mix = logsumexp(log_k, axis=0) - jnp.log(jnp.asarray(n, x.dtype))
    return log_f[None, :] + log_k - log_mix[None, :]


def pooled_drift_from_values(x, s, y, log_f):
    """Pooled drift (N, d) from pooled proposals y (P, d) and their log f (P,).

    Returns (drift (N, d), ess (N,), ok (N,)); ess is the effective number of pooled points each
    particle's estimate rests on (1 ≤ ess ≤ P).
    """
    log_w = pooled_log_weights(x, s, y, log_f)
    mean, ess, ok = self_normalised_mean(log_w, y)
    drift = jnp.where(ok[:, None], (mean - x) / s, jnp.zeros_like(x))
    return drift, ess, ok


def pooled_drift(rng_key, x, t, logdensity_fn: Callable, num_samples: int):
    """Pooled Föllmer drift for a population x (N, d) at time t.

    Args:
        rng_key: PRNG key. x: the particles (N, d). t: time in [0, 1). logdensity_fn: log π on flat
        arrays (d,). num_samples: M, proposals (density evaluations) per particle.
    Returns:
        (drift (N, d), FollmerDriftInfo with per-particle ess and ok, and num_density_evals = M,
        the cost per particle).
    """
    n, d = x.shape
    s = 1.0 - t
    z = jax.random.normal(rng_key, (n, num_samples, d), x.dtype)
    y = (x[:, None, :] + jnp.sqrt(s) * z).reshape(n * num_samples, d)
    log_f = log_follmer_ratio(jax.vmap(logdensity_fn)(y), y)
    drift, ess, ok = pooled_drift_from_values(x, s, y, log_f)
    return drift, FollmerDriftInfo(ess, ok, num_samples)
