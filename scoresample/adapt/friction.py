"""Friction rule for kinetic Langevin samplers (RandomizedMidpoint), from the chains' draws.

On a Gaussian coordinate of scale σ (curvature ω² = 1/σ²), kinetic Langevin
    dx = v dt,  dv = -γ v dt - x/σ² dt + sqrt(2γ) dB
has position autocorrelation ρ(t) with integrated time ∫ρ = 2γσ² (the spectral density of x at
zero over its variance, from the transfer function 1/(s² + γs + ω²)), and for x² (a Gaussian
process, so ρ_{x²} = ρ²) ∫ρ² dt = γσ² + 1/γ (integrated over the whole line; checked by
quadrature in tests/test_friction.py). The first favours γ → 0 (anti-correlated
means), the second is what the b²(x²) metric and variance estimates pay for. Over directions
with scales σ_i the mean of γσ_i² + 1/γ is minimised at

    γ* = 1 / sqrt(mean_i σ_i²) = 1 / RMS scale,

which is MCLMC's initial decoherence length L = sqrt(tr Σ) (Robnik, De Luca, Silverstein &
Seljak 2023; BlackJAX ``mclmc_find_L_and_step_size``) in Langevin's time units: the velocity
decoheres in time 1/γ, over which a unit-mass chain travels sqrt(d)/γ = L. The σ_i are measured
in the coordinates the sampler runs in (whitened by the preconditioner), from the same warmup
windows as the preconditioner: after a window has re-fitted the preconditioner, σ_i ≈ 1/inflation
and γ* ≈ inflation; the rule matters where the preconditioner is fixed or misfits.
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.scipy.linalg as jsl

from scoresample.adapt.preconditioner import Preconditioner, is_dense


def whitened_mean_variance(precond: Preconditioner, cov):
    """tr(L⁻¹ Σ L⁻ᵀ)/d: the mean variance, in whitened coordinates, of draws of covariance Σ
    ((d, d), or its diagonal (d,)) in position coordinates."""
    scale = precond.scale
    if is_dense(precond):
        cov = jnp.diag(cov) if cov.ndim == 1 else cov
        half = jsl.solve_triangular(scale, cov, lower=True)
        return jnp.trace(jsl.solve_triangular(scale, half.T, lower=True)) / cov.shape[-1]
    diag = jnp.diagonal(cov) if cov.ndim == 2 else cov
    return jnp.mean(diag / scale**2)


def friction_from_variance(mean_variance):
    """γ* = 1/sqrt(mean σ_i²) (the module's rule)."""
    return 1.0 / jnp.sqrt(mean_variance)
