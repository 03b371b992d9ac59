"""Does the density jump? A warmup test for unadjusted gradient samplers.

An unadjusted Langevin sampler moves by gradients only: a jump of the density (a step function
of a parameter, e.g. the change point of a piecewise-constant rate) has zero gradient, so the
sampler does not see it and its draws of that parameter follow the prior. A Metropolis test
would see it; an unadjusted chain needs to be told.

The test: the energy error ΔH of one velocity-Verlet step of size ε (PROBE_STEP, in whitened
coordinates, where the posterior's scale is about 1 after the first half of warmup) from a
warmup draw with a fresh velocity. On a density with three continuous derivatives it is O(ε³)
(the step conserves a modified energy H + O(ε²), which moves by O(ε) in one step). Across a jump
of size J it is about J whenever the step crosses the jump, with probability proportional to ε. The
step-size probe's rejection 1 - min(1, exp(-ΔH)) follows |ΔH| for small errors, so the ratio

    R = mean rejection at ε / mean rejection at ε/2        (same draws, same velocities)

is near 2³ = 8 on smooth densities and near 2 where jumps cause the rejections. Measured after
300 warmup iterations of 4 chains (benchmarks/BENCHMARKS.md, "Discontinuous densities"):
RandomizedMidpoint 6.2 / 9.3 / 8.0 on centred eight schools / the d = 10 funnel / German
credit, MultALMC 5.3 / 7.5 on centred eight schools / the funnel (the neck's curvature keeps
these below 8); 1.5 (RandomizedMidpoint) and 1.2 (MultALMC) on the change-point model of
NumPyro's test suite, 1.8 on a density with floor(x). RATIO_THRESHOLD = 3 sits between (1.7x
from the largest jump value, 1.8x from the smallest smooth one).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp

from scoresample.diffusion.integrators import leapfrog_energy_error

PROBE_STEP = 0.125  # small against the whitened scale 1: smooth densities in the ε³ regime
RATIO_THRESHOLD = 3.0
MIN_PROBES = 50  # fewer probe pairs: no verdict
# Rejections at ε/2 below this multiple of the float rounding of the log density carry no signal.
ROUNDING_MARGIN = 2.0


class NonSmoothDensityWarning(UserWarning):
    """The density seems to jump: an unadjusted gradient sampler does not see jumps."""


class SmoothnessState(NamedTuple):
    """Sums over the warmup's probes: rejections at the probe's step and at half of it."""

    rejection: jax.Array
    rejection_half: jax.Array
    count: jax.Array


def smoothness_init() -> SmoothnessState:
    zero = jnp.zeros((), jnp.float32)
    return SmoothnessState(zero, zero, zero)


def smoothness_probe(rng_key, state, logdensity_fn, step=PROBE_STEP):
    """Acceptances min(1, exp(-ΔH)) of one velocity-Verlet step of size ``step`` and of
    ``step / 2`` from ``state.position`` with the same velocity; 3 gradients."""
    x = state.position
    ld, grad = jax.value_and_grad(logdensity_fn)(x)
    accept = lambda h: jnp.minimum(
        1.0, jnp.exp(-leapfrog_energy_error(rng_key, x, ld, grad, logdensity_fn, h))
    ).astype(jnp.float32)
    return (accept(step), accept(0.5 * step)), jnp.int32(3)


def smoothness_update(state: SmoothnessState, acceptance, acceptance_half, active):
    """Add one probe pair (acceptances at ε and ε/2) when ``active``; NaN counts as rejected."""
    reject = lambda a: jnp.asarray(1.0 - jnp.where(jnp.isfinite(a), a, 0.0), jnp.float32)
    new = SmoothnessState(
        state.rejection + reject(acceptance),
        state.rejection_half + reject(acceptance_half),
        state.count + 1.0,
    )
    return jax.tree.map(lambda a, b: jnp.where(active, a, b), new, state)


def rejection_ratio(state: SmoothnessState) -> jax.Array:
    """R (NaN when the half-step probes never rejected)."""
    return state.rejection / jnp.where(state.rejection_half > 0, state.rejection_half, jnp.nan)


def looks_discontinuous(state: SmoothnessState, logdensity) -> jax.Array:
    """R below RATIO_THRESHOLD, from enough probes whose half-step rejections are above the
    float rounding of ``logdensity`` (a typical value of the log density)."""
    eps = jnp.finfo(jnp.result_type(logdensity)).eps
    rounding = ROUNDING_MARGIN * eps * jnp.abs(logdensity)
    signal = state.rejection_half / jnp.maximum(state.count, 1.0) > rounding
    return (state.count >= MIN_PROBES) & signal & (rejection_ratio(state) < RATIO_THRESHOLD)


def warn_if_discontinuous(flag, ratio, count) -> None:
    """Host callback: the warning, once the warmup's probes are in."""
    if bool(flag):
        warnings.warn(
            f"the log density seems to jump (probe rejection ratio at step vs half step "
            f"{float(ratio):.1f} over {int(count)} warmup probes; about 8 on a smooth density, 2 "
            "where jumps cause the rejections): this sampler is unadjusted and moves by "
            "gradients, which do not see a jump, so the draws of the parameter behind it are "
            "probably wrong. Use a Metropolis-adjusted kernel (CMCD, or NumPyro's NUTS), or "
            "make the density continuous.",
            NonSmoothDensityWarning,
            stacklevel=2,
        )
