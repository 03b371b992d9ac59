"""Diagnostics with exact answers: kernel Stein discrepancy, mode weights, EMC, b², MMD."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def imq_stein_kernel_matrix(x, scores_x, y, scores_y, c=1.0, beta=-0.5):
    """Langevin–Stein kernel k_p(x_i, y_j) for the IMQ base kernel k = (c² + |x-y|²)^β."""
    r = x[:, None, :] - y[None, :, :]
    r2 = jnp.sum(r**2, axis=-1)
    q = c**2 + r2
    d = x.shape[-1]
    k = q**beta
    grad_x_k = 2.0 * beta * r * (q ** (beta - 1.0))[..., None]  # ∇_x k; ∇_y k = -∇_x k
    trace = -2.0 * beta * d * q ** (beta - 1.0) - 4.0 * beta * (beta - 1.0) * r2 * q ** (beta - 2.0)
    ss = scores_x @ scores_y.T
    term_x = jnp.einsum("jd,ijd->ij", scores_y, grad_x_k)  # s(y)·∇_x k
    term_y = -jnp.einsum("id,ijd->ij", scores_x, grad_x_k)  # s(x)·∇_y k
    return ss * k + term_x + term_y + trace


def kernel_stein_discrepancy(draws, scores, c=1.0, beta=-0.5, block=512):
    """KSD (V-statistic, IMQ kernel; Gorham & Mackey 2017) of draws (n, d) with the target's
    scores ∇log p at the draws (n, d). Zero only for the target; smaller is better."""
    x = jnp.asarray(draws)
    s = jnp.asarray(scores)
    n = x.shape[0]
    total = 0.0
    for start in range(0, n, block):
        xb, sb = x[start : start + block], s[start : start + block]
        total += float(jnp.sum(imq_stein_kernel_matrix(xb, sb, x, s, c, beta)))
    return float(np.sqrt(max(total, 0.0)) / n)


def ksd_from_logdensity(draws, logdensity_fn: Callable, **kwargs):
    """KSD with scores computed from a log density on flat arrays."""
    x = jnp.asarray(draws)
    scores = jax.vmap(jax.grad(logdensity_fn))(x)
    return kernel_stein_discrepancy(x, scores, **kwargs)


def mode_assignment(draws, component_means):
    """Index of the nearest component mean for each draw."""
    x = np.asarray(draws).reshape(-1, np.shape(component_means)[-1])
    dist2 = ((x[:, None, :] - np.asarray(component_means)[None]) ** 2).sum(-1)
    return dist2.argmin(axis=1)


def mode_weights(draws, component_means):
    """Fraction of draws nearest to each component mean."""
    k = np.shape(component_means)[0]
    idx = mode_assignment(draws, component_means)
    return np.bincount(idx, minlength=k) / idx.size


def entropic_mode_coverage(weights):
    """EMC = -Σ p_k log p_k / log K (1 for equal coverage of all K modes, 0 for one mode)."""
    p = np.asarray(weights, np.float64)
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / np.log(p.size))


def mode_weight_error(draws, component_means, true_weights):
    """max_k |ŵ_k - w_k|."""
    return float(np.max(np.abs(mode_weights(draws, component_means) - np.asarray(true_weights))))


def bias_squared(second_moment_estimate, true_second_moment, true_var_second_moment):
    """b² = mean_i (Ê[x_i²] - E[x_i²])² / Var[x_i²] (Robnik et al. 2023, the MCLMC papers)."""
    err = np.asarray(second_moment_estimate) - np.asarray(true_second_moment)
    return np.mean(err**2 / np.asarray(true_var_second_moment), axis=-1)


def running_bias_squared(chains, true_mean, true_cov):
    """b²(x²) of each chain's running mean of x², averaged over chains, for a Gaussian truth.

    chains: (num_chains, num_draws, d). For x ~ N(μ, Σ): E[x_i²] = μ_i² + Σ_ii and
    Var[x_i²] = 2Σ_ii² + 4μ_i²Σ_ii. Returns an array (num_draws,).
    """
    x2 = np.asarray(chains, np.float64) ** 2
    running = np.cumsum(x2, axis=1) / np.arange(1, x2.shape[1] + 1)[None, :, None]
    mu, var = np.asarray(true_mean), np.diag(np.asarray(true_cov))
    e2, v2 = mu**2 + var, 2 * var**2 + 4 * mu**2 * var
    return bias_squared(running, e2, v2).mean(axis=0)


def mmd_rbf(x, y, bandwidth=None):
    """Squared maximum mean discrepancy with a Gaussian kernel (median-heuristic bandwidth)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    z = np.concatenate([x, y])
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)
    if bandwidth is None:
        bandwidth = np.sqrt(0.5 * np.median(d2[d2 > 0]))
    k = np.exp(-d2 / (2 * bandwidth**2))
    n = x.shape[0]
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())
