"""The preconditioner (m, L): whitening z = L^{-1}(x - m), started from the MAP with a Laplace
scale and refined from warmup draws by Welford estimates.

L is a lower-triangular (d, d) matrix when ``dense`` and a (d,) vector of scales otherwise; which
one is decided once, statically, from the dimension. The Welford covariance is regularised the
way Stan regularises its metric: (n/(n+5)) Σ̂ + 1e-3 (5/(n+5)) I, so a short window never gives a
singular scale (Stan reference manual, "HMC algorithm parameters"); inside warmup windows the
estimates are blended with the current preconditioner instead (``blend_with_prior``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import optax

DENSE_MAX_DIM = 200  # a dense Laplace Hessian costs d gradients; beyond this, diagonal
DIAG_HESSIAN_MAX_DIM = 4096  # exact diagonal by d Hessian-vector products up to this size
EIGENVALUE_FLOOR = 1e-6  # curvatures at or below this (flat or concave) get unit scale


class Preconditioner(NamedTuple):
    """mean m (d,) and scale L: (d, d) lower triangular (dense) or (d,) (diagonal)."""

    mean: jax.Array
    scale: jax.Array


def is_dense(precond: Preconditioner) -> bool:
    return precond.scale.ndim == precond.mean.ndim + 1


def identity_preconditioner(dim: int, dense: bool, dtype=jnp.float32, mean=None) -> Preconditioner:
    mean = jnp.zeros(dim, dtype) if mean is None else mean
    scale = jnp.eye(dim, dtype=dtype) if dense else jnp.ones(dim, dtype)
    return Preconditioner(mean, scale)


def to_position(precond: Preconditioner, z):
    """x = m + L z (z may carry leading batch axes)."""
    if is_dense(precond):
        return precond.mean + z @ precond.scale.T
    return precond.mean + precond.scale * z


def to_whitened(precond: Preconditioner, x):
    """z = L^{-1}(x - m) (x may carry leading batch axes)."""
    centred = x - precond.mean
    if is_dense(precond):
        flat = centred.reshape(-1, centred.shape[-1])
        z = jsl.solve_triangular(precond.scale, flat.T, lower=True).T
        return z.reshape(centred.shape)
    return centred / precond.scale


def log_det_scale(precond: Preconditioner):
    """log |det L| of the whitening map."""
    diag = jnp.diagonal(precond.scale) if is_dense(precond) else precond.scale
    return jnp.sum(jnp.log(jnp.abs(diag)))


def whitened_logdensity(logdensity_fn: Callable, precond: Preconditioner) -> Callable:
    """z ↦ log p(m + L z) + log |det L|: the density of z = L⁻¹(x - m), with the same
    normalising constant as p (so evidence estimates in z are evidence estimates in x)."""
    offset = log_det_scale(precond)
    return lambda z: logdensity_fn(to_position(precond, z)) + offset.astype(z.dtype)


def scale_from_covariance(cov, dense: bool):
    """L with L Lᵀ = cov (Cholesky) when dense; sqrt of the diagonal otherwise."""
    if dense:
        d = cov.shape[-1]
        cov = 0.5 * (cov + cov.T)
        chol = jnp.linalg.cholesky(cov)
        # A covariance that is not numerically positive definite falls back to its diagonal.
        fallback = jnp.diag(jnp.sqrt(jnp.clip(jnp.diagonal(cov), 1e-12, None)))
        ok = jnp.all(jnp.isfinite(chol))
        return jnp.where(ok, chol, fallback).reshape(d, d)
    return jnp.sqrt(jnp.clip(cov, 1e-12, None))


# ---------------------------------------------------------------------------------------------
# MAP and Laplace scale


def find_map(potential_fn: Callable, x0, num_iters: int = 200, tol: float = 1e-4):
    """Minimise the potential from x0 with L-BFGS (optax, zoom line search).

    Returns (x_map, num_grad_evals). A non-finite potential counts as +inf, so the line search
    backs off from regions where the model is undefined. If the result is not finite or worse
    than x0, x0 is returned.
    """

    def safe_potential(x):
        u = potential_fn(x)
        return jnp.where(jnp.isfinite(u), u, jnp.inf)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(safe_potential)

    def cond(carry):
        _, _, i, _, gnorm = carry
        return (i < num_iters) & (gnorm > tol)

    def body(carry):
        x, state, i, count, _ = carry
        value, grad = value_and_grad(x, state=state)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=safe_potential)
        x = optax.apply_updates(x, updates)
        steps = optax.tree_utils.tree_get(state, "num_linesearch_steps")
        gnorm = jnp.where(jnp.all(jnp.isfinite(grad)), jnp.linalg.norm(grad), 0.0)
        return x, state, i + 1, count + 1 + steps, gnorm

    init = (x0, opt.init(x0), jnp.asarray(0), jnp.asarray(0), jnp.asarray(jnp.inf, x0.dtype))
    x, _, _, count, _ = jax.lax.while_loop(cond, body, init)
    u0, u = safe_potential(x0), safe_potential(x)
    good = (
        jnp.isfinite(u) & jnp.all(jnp.isfinite(x)) & (u <= jnp.where(jnp.isfinite(u0), u0, jnp.inf))
    )
    return jnp.where(good, x, x0), count.astype(jnp.int32)


def laplace_covariance(potential_fn: Callable, x_map, dense: bool):
    """Inverse Hessian of the potential at x_map (dense) or inverse of its diagonal.

    Curvatures at or below EIGENVALUE_FLOOR (flat, concave, or undefined directions) get unit
    variance; warmup draws refine them. Returns (covariance, num_grad_evals) where a Hessian counts
    as d gradients (d Hessian-vector products); above DIAG_HESSIAN_MAX_DIM the covariance is I.
    """
    d = x_map.shape[0]
    if dense:
        h = jax.hessian(potential_fn)(x_map)
        h = 0.5 * (h + h.T)
        h = jnp.where(jnp.all(jnp.isfinite(h)), h, jnp.eye(d, dtype=x_map.dtype))
        lam, vec = jnp.linalg.eigh(h)
        inv_lam = jnp.where(lam > EIGENVALUE_FLOOR, 1.0 / jnp.where(lam > 0, lam, 1.0), 1.0)
        return (vec * inv_lam) @ vec.T, jnp.asarray(d, jnp.int32)
    if d > DIAG_HESSIAN_MAX_DIM:
        return jnp.ones(d, x_map.dtype), jnp.asarray(0, jnp.int32)
    grad_fn = jax.grad(potential_fn)

    def hvp_diag(e):
        return jnp.vdot(e, jax.jvp(grad_fn, (x_map,), (e,))[1])

    diag = jax.lax.map(hvp_diag, jnp.eye(d, dtype=x_map.dtype), batch_size=min(d, 256))
    diag = jnp.where(jnp.isfinite(diag) & (diag > EIGENVALUE_FLOOR), diag, 1.0)
    return 1.0 / diag, jnp.asarray(d, jnp.int32)


def pool_gaussians(means, covs, weights=None):
    """Moment-match the mixture Σ_i w_i N(means_i, covs_i) (equal weights when None).

    m = Σ w_i m_i; Σ = Σ w_i Σ_i + Σ w_i (m_i - m)(m_i - m)ᵀ (law of total variance). For a
    multimodal target whose fits found different modes, the result spans all of them instead of
    collapsing on one. covs: (n, d, d) dense or (n, d) diagonal.
    """
    n = means.shape[0]
    w = jnp.full((n,), 1.0 / n, means.dtype) if weights is None else weights / jnp.sum(weights)
    w = w.astype(means.dtype)
    m = w @ means
    centred = means - m
    if covs.ndim == 3:
        between = (centred.T * w) @ centred
        within = jnp.einsum("i,ijk->jk", w, covs)
    else:
        between = w @ centred**2
        within = w @ covs
    return m, within + between


# ---------------------------------------------------------------------------------------------
# Welford estimates


class WelfordState(NamedTuple):
    count: jax.Array
    mean: jax.Array
    m2: jax.Array  # (d, d) sum of outer products of deviations (dense) or (d,) sum of squares


def welford_init(dim: int, dense: bool, dtype=jnp.float32) -> WelfordState:
    m2 = jnp.zeros((dim, dim) if dense else (dim,), dtype)
    return WelfordState(jnp.zeros((), dtype), jnp.zeros(dim, dtype), m2)


def welford_update(state: WelfordState, x) -> WelfordState:
    """Add one draw (d,) or a batch (n, d), merging batch moments (Chan et al. 1979)."""
    batch = x.reshape(-1, x.shape[-1])
    n_b = jnp.asarray(batch.shape[0], state.mean.dtype)
    mean_b = jnp.mean(batch, axis=0)
    dev = batch - mean_b
    dense = state.m2.ndim == 2
    m2_b = dev.T @ dev if dense else jnp.sum(dev**2, axis=0)
    n = state.count + n_b
    delta = mean_b - state.mean
    mean = state.mean + delta * n_b / n
    corr = jnp.outer(delta, delta) if dense else delta**2
    m2 = state.m2 + m2_b + corr * state.count * n_b / n
    return WelfordState(n, mean, m2)


def blend_with_prior(state: WelfordState, prior_mean, prior_cov):
    """Posterior-mean style blend of the window's estimates with the current preconditioner.

    (m, Σ) = (n m̂ + n0 m_prior)/(n + n0), (n Σ̂ + n0 Σ_prior)/(n + n0), with n0 = d + 5 for a
    dense Σ (an empirical covariance needs more than d draws to be full rank) and 5 for a
    diagonal one. A short first window (a few draws of one chain) therefore only nudges the
    Laplace start instead of replacing it with a rank-deficient estimate.
    """
    n = state.count
    dense = state.m2.ndim == 2
    n0 = (state.mean.shape[-1] + 5.0) if dense else 5.0
    cov_hat = state.m2 / jnp.maximum(n - 1.0, 1.0)
    w = n / (n + n0)
    mean = w * state.mean + (1.0 - w) * prior_mean
    return mean, w * cov_hat + (1.0 - w) * prior_cov


def covariance_of_scale(scale):
    """L Lᵀ (dense) or L² (diagonal)."""
    return scale @ scale.T if scale.ndim == 2 else scale**2


def welford_covariance(state: WelfordState):
    """Sample covariance shrunk towards 1e-3 I as Stan does (weight 5/(n+5))."""
    n = state.count
    cov = state.m2 / jnp.maximum(n - 1.0, 1.0)
    shrink = 5.0 / (n + 5.0)
    if cov.ndim == 2:
        eye = jnp.eye(cov.shape[0], dtype=cov.dtype)
        return (1.0 - shrink) * cov + 1e-3 * shrink * eye
    return (1.0 - shrink) * cov + 1e-3 * shrink
