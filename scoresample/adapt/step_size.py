"""Step-size rules for unadjusted samplers.

The rule: dual averaging (Nesterov 2009, in the form of Hoffman & Gelman 2014, Algorithm 5)
of the log step size towards a target acceptance probability of a Metropolis test that is
computed but never applied. For Langevin-type samplers the test is that of a one-step HMC (MALA)
proposal with the same step size from the current state (``leapfrog_energy_error``): it sees the
largest curvature of the whitened target exactly where the chain is, scales with dimension like
the discretisation error of the unadjusted chain (h ∝ d^{-1/6}), and costs one gradient per
warmup iteration. Why not an energy-variance target (MCLMC)? The friction and noise of kinetic
Langevin change the energy by design, so the energy error of an RMP step is not defined without
an extra deterministic integration; the one-step probe is cheaper and has no tuning constant
beyond the target. The target's default is measured in tests/test_adapt.py (bias on a κ = 100
Gaussian) and recorded in benchmarks/BENCHMARKS.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# Hoffman & Gelman (2014), section 3.2.1: γ = 0.05, t0 = 10, κ = 0.75.
DA_GAMMA = 0.05
DA_T0 = 10.0
DA_KAPPA = 0.75


class DualAveragingState(NamedTuple):
    log_step: jnp.ndarray
    log_step_avg: jnp.ndarray
    error_avg: jnp.ndarray
    count: jnp.ndarray
    mu: jnp.ndarray


def dual_averaging_init(step_size) -> DualAveragingState:
    """Start at step_size and shrink towards μ = log h0.

    Hoffman & Gelman shrink towards log(10 h0) so that HMC tries large steps early; an unadjusted
    chain has no accept/reject to undo such a step (its state would be thrown far into the
    tails), so here the prior guess is h0 itself: 1 in whitened coordinates, the unit scale.
    """
    log_h = jnp.log(jnp.asarray(step_size, jnp.float32))
    zero = jnp.zeros_like(log_h)
    return DualAveragingState(log_h, log_h, zero, zero, log_h)


def dual_averaging_update(state: DualAveragingState, acceptance, target) -> DualAveragingState:
    """One dual-averaging update with the observed acceptance (NaN counts as 0)."""
    acceptance = jnp.where(jnp.isfinite(acceptance), acceptance, 0.0)
    t = state.count + 1.0
    w = 1.0 / (t + DA_T0)
    error_avg = (1.0 - w) * state.error_avg + w * (target - acceptance)
    log_step = state.mu - jnp.sqrt(t) / DA_GAMMA * error_avg
    eta = t ** (-DA_KAPPA)
    log_step_avg = eta * log_step + (1.0 - eta) * state.log_step_avg
    new = DualAveragingState(log_step, log_step_avg, error_avg, t, state.mu)
    # Keep the state's dtype (float32): a float64 acceptance (jax_enable_x64) must not promote
    # it, or warmup's lax.cond branches would disagree on types.
    return jax.tree.map(lambda a, b: jnp.asarray(a, b.dtype), new, state)
