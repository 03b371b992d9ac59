"""Integrators and the Gaussian integrals of Brownian motion they need.

The randomized-midpoint integrals follow ALGORITHMS.md §1 (Shen & Lee 2019; Yu, Karagulyan &
Dalalyan 2023): every Gaussian is drawn from the *same* Brownian path, split at the random
midpoint, so the midpoint and end-point increments have the right joint law.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def one_minus_exp_neg(y):
    """E1(y) = 1 - exp(-y), computed as -expm1(-y) so it stays accurate for small y."""
    return -jnp.expm1(-y)


def _x_minus_two_tanh_half(x):
    """x - 2 tanh(x/2), with its Taylor series below 0.5 where the difference cancels in float32."""
    series = x**3 / 12.0 - x**5 / 120.0 + 17.0 * x**7 / 20160.0
    safe_x = jnp.where(x < 0.5, 1.0, x)
    direct = safe_x - 2.0 * jnp.tanh(safe_x / 2.0)
    return jnp.where(x < 0.5, series, direct)


def _ou_interval_integrals(rng_key, friction, length, shape, dtype):
    """Draw (Q, W) on an interval of the given length.

    Q = ∫ e^{-γ(τ-s)} dB_s and W = ∫ (1 - e^{-γ(τ-s)}) dB_s. Q is drawn from its marginal
    N(0, E1(2γτ)/(2γ)); W | Q is Gaussian with mean tanh(γτ/2) Q and variance
    (γτ - 2 tanh(γτ/2))/γ. This conditional form never yields a negative variance.
    """
    key_q, key_w = jax.random.split(rng_key)
    x = friction * length
    var_q = one_minus_exp_neg(2.0 * x) / (2.0 * friction)
    var_w_given_q = _x_minus_two_tanh_half(x) / friction
    q = jnp.sqrt(var_q) * jax.random.normal(key_q, shape, dtype)
    w = jnp.tanh(x / 2.0) * q + jnp.sqrt(jnp.maximum(var_w_given_q, 0.0)) * jax.random.normal(
        key_w, shape, dtype
    )
    return q, w


class KineticBrownianIntegrals(NamedTuple):
    """The three Gaussian integrals of one randomized-midpoint kinetic Langevin step.

    w1 = ∫_0^a (1-e^{-γ(a-s)}) dB_s, w2 = ∫_0^h (1-e^{-γ(h-s)}) dB_s, w3 = ∫_0^h e^{-γ(h-s)} dB_s.
    """

    w1: jax.Array
    w2: jax.Array
    w3: jax.Array


def kinetic_brownian_integrals(rng_key, friction, step_size, midpoint, shape, dtype=jnp.float32):
    """Sample (W1, W2, W3) for a kinetic step of size h with midpoint a = α h, on one path.

    The path is split at a: (Q_a, W_a) on [0, a] and (Q_b, W_b) on [a, h] are independent, and
    W1 = W_a, W3 = e^{-γ(h-a)} Q_a + Q_b, W2 = W_a + W_b + (1 - e^{-γ(h-a)}) Q_a.
    """
    key_a, key_b = jax.random.split(rng_key)
    rest = step_size - midpoint
    q_a, w_a = _ou_interval_integrals(key_a, friction, midpoint, shape, dtype)
    q_b, w_b = _ou_interval_integrals(key_b, friction, rest, shape, dtype)
    decay = jnp.exp(-friction * rest)
    w3 = decay * q_a + q_b
    w2 = w_a + w_b + one_minus_exp_neg(friction * rest) * q_a
    return KineticBrownianIntegrals(w_a, w2, w3)


def overdamped_brownian_pair(rng_key, step_size, fraction, shape, dtype=jnp.float32):
    """(B_a, B_h) of one Brownian path at times a = α h and h: B_h = B_a + sqrt((1-α)h) ξ."""
    key_a, key_b = jax.random.split(rng_key)
    b_a = jnp.sqrt(fraction * step_size) * jax.random.normal(key_a, shape, dtype)
    b_h = b_a + jnp.sqrt((1.0 - fraction) * step_size) * jax.random.normal(key_b, shape, dtype)
    return b_a, b_h


def leapfrog_energy_error(rng_key, position, logdensity, logdensity_grad, logdensity_fn, step_size):
    """Energy error of ONE velocity-Verlet step of H(x, v) = -log p(x) + |v|²/2 from x, v ~ N(0, I).

    Used as a step-size probe for unadjusted Langevin samplers (the proposal is never applied):
    min(1, exp(-ΔH)) is the acceptance probability a one-step HMC (= MALA) proposal would have.
    Costs one gradient. Returns ΔH (+inf where the proposal is not finite).
    """
    v = jax.random.normal(rng_key, position.shape, position.dtype)
    x1 = position + step_size * v + 0.5 * step_size**2 * logdensity_grad
    ld1, g1 = jax.value_and_grad(logdensity_fn)(x1)
    v1 = v + 0.5 * step_size * (logdensity_grad + g1)
    delta = -(ld1 - logdensity) + 0.5 * (jnp.sum(v1**2) - jnp.sum(v**2))
    ok = jnp.isfinite(delta) & jnp.all(jnp.isfinite(g1))
    return jnp.where(ok, delta, jnp.inf)
