"""ManyWell (Midgley et al. 2023, "Flow annealed importance sampling bootstrap", ICLR): a product
of n independent 2-D double wells, each with energy E(a, b) = a⁴ - 6a² + 0.5a + 0.5b².

log γ(x) = -Σ_pairs E(x_{2j}, x_{2j+1}) (unnormalised). log Z = n (log Z_a + ½ log 2π) where
Z_a = ∫ exp(-a⁴ + 6a² - 0.5a) da is a 1-D integral done here by quadrature (scipy.integrate.quad
to 1e-12); for n = 16 (ManyWell-32) this gives 164.6957 (ALGORITHMS.md). 2^n modes of unequal
mass: the +0.5a tilt makes the left well (a ≈ -1.77) heavier than the right (a ≈ 1.69).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from scipy import integrate

from scoresample.targets.base import Target


def _well_energy(a):
    return a**4 - 6.0 * a**2 + 0.5 * a


@functools.lru_cache(maxsize=None)
def double_well_log_z() -> float:
    """log ∫ exp(-a⁴ + 6a² - 0.5a) da by adaptive quadrature (the integrand is < 1e-200 beyond
    |a| = 5, so [-8, 8] holds all of it)."""
    shift = 9.5  # max of 6a² - a⁴ - 0.5a ≈ 9.87; subtracting keeps the integrand O(1)
    val, _ = integrate.quad(
        lambda a: np.exp(-_well_energy(a) - shift), -8.0, 8.0, epsabs=0, epsrel=1e-12, limit=200
    )
    return float(np.log(val) + shift)


def double_well_probabilities() -> tuple[float, float]:
    """Mass of the left (a < 0) and right (a > 0) well of one pair."""
    shift = 9.5
    f = lambda a: np.exp(-_well_energy(a) - shift)
    left, _ = integrate.quad(f, -8.0, 0.0, epsabs=0, epsrel=1e-12)
    right, _ = integrate.quad(f, 0.0, 8.0, epsabs=0, epsrel=1e-12)
    return left / (left + right), right / (left + right)


def manywell(num_pairs: int = 16) -> Target:
    """ManyWell with ``num_pairs`` pairs (d = 2 · num_pairs), exact log Z by quadrature."""
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1:
        raise ValueError(f"num_pairs must be a positive integer, got {num_pairs!r}")
    dim = 2 * num_pairs
    log_z = num_pairs * (double_well_log_z() + 0.5 * np.log(2 * np.pi))

    def logdensity_fn(x):
        a, b = x[0::2], x[1::2]
        return -jnp.sum(_well_energy(a)) - 0.5 * jnp.sum(b**2)

    def model():
        x = numpyro.sample("x", dist.ImproperUniform(dist.constraints.real_vector, (), (dim,)))
        numpyro.factor("manywell_logdensity", logdensity_fn(x))

    p_left, _ = double_well_probabilities()
    return Target(
        f"manywell{dim}",
        dim,
        logdensity_fn,
        model,
        log_z=float(log_z),
        extra={"p_left": p_left, "num_pairs": num_pairs},
    )
