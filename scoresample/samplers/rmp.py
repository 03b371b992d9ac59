"""Randomized-midpoint Langevin Monte Carlo (kinetic and overdamped), unadjusted.

References:
    Shen & Lee (2019), "The randomized midpoint method for log-concave sampling", NeurIPS.
    Yu, Karagulyan & Dalalyan (2023/24), "Langevin Monte Carlo for strongly log-concave
    distributions: randomized midpoint revisited" (the kinetic step written out in
    ALGORITHMS.md §1, with its Brownian integrals drawn on one path).

Kinetic Langevin with friction γ and inverse mass matrix U, targeting p(x) ∝ exp(log p):
    dx = v dt,  dv = -γ v dt + U ∇log p(x) dt + sqrt(2γ) U^{1/2} dB,  invariant p(x) ⊗ N(0, U).
One step costs two gradients: one at the random midpoint, one at the end point (cached).
U (a scalar, a diagonal or a dense matrix, as BlackJAX's ``inverse_mass_matrix``) makes the
chain the unit-mass chain of z = U^{-1/2} x: pass the posterior covariance (e.g. from
``scoresample.window_adaptation``) and the step size of the whitened problem.

Friction: the BlackJAX-style API takes γ (default 1); the NumPyro front tunes it in warmup
(``scoresample.adapt.friction``: γ = 1/RMS whitened scale, which is ≈ 1 once the preconditioner
fits; the earlier fixed default was 1, measured: min bulk ESS per gradient 0.030 / 0.012 on
eight schools for γ = 1 / 2, γ = 0.5 diverged there; see benchmarks/BENCHMARKS.md).
There is no default step size in the BlackJAX-style API (the caller chooses); the NumPyro front
adapts it in warmup (see ``scoresample.adapt.step_size``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm
from jax.flatten_util import ravel_pytree

from scoresample.diffusion.integrators import (
    kinetic_brownian_integrals,
    leapfrog_energy_error,
    one_minus_exp_neg,
    overdamped_brownian_pair,
)
from scoresample.samplers.base import (
    SamplerSpec,
    SamplingAPI,
    check_choice,
    check_positive,
    check_positive_int,
    inverse_mass,
    value_and_grad_finite,
)

__all__ = ["RMPState", "RMPInfo", "init", "build_kernel", "as_top_level_api", "rmp", "spec"]

VARIANTS = ("kinetic", "overdamped")
DEFAULT_FRICTION = 1.0


class RMPState(NamedTuple):
    """position and velocity (pytrees), log density and its gradient at position (cached)."""

    position: object
    velocity: object
    logdensity: jax.Array
    logdensity_grad: object


class RMPInfo(NamedTuple):
    """diverging: at least one step met a non-finite density or gradient or was unstable
    (num_reflected of them); each such step was undone and the velocity reversed, so the
    returned state is valid. ``is_divergent`` is the same flag under BlackJAX's name."""

    diverging: jax.Array
    num_reflected: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array

    @property
    def is_divergent(self):
        return self.diverging


def validate_params(step_size=None, friction=DEFAULT_FRICTION, num_steps=1, variant="kinetic"):
    """Raise ValueError, naming the parameter, for an invalid hyper-parameter."""
    if step_size is not None:
        check_positive("step_size", step_size)
    check_positive("friction", friction)
    check_positive_int("num_steps", num_steps)
    check_choice("variant", variant, VARIANTS)


def init(position, logdensity_fn: Callable, rng_key=None, inverse_mass_matrix=1.0) -> RMPState:
    """Start at ``position`` with velocity ~ N(0, U) (zero when no rng_key is given)."""
    flat, unravel = ravel_pytree(position)
    ld, grad = value_and_grad_finite(lambda y: logdensity_fn(unravel(y)), flat)
    if rng_key is None:
        velocity = jnp.zeros_like(flat)
    else:
        noise = jax.random.normal(rng_key, flat.shape, flat.dtype)
        velocity = inverse_mass(inverse_mass_matrix).apply_sqrt(noise).astype(flat.dtype)
    return RMPState(position, unravel(velocity), ld, unravel(grad))


def _kinetic_step(key, x, v, g, flat_ld, h, gamma, u):
    key_alpha, key_w = jax.random.split(key)
    alpha = jax.random.uniform(key_alpha, (), x.dtype)
    a = alpha * h
    w = kinetic_brownian_integrals(key_w, gamma, h, a, x.shape, x.dtype)
    e1a = one_minus_exp_neg(gamma * a) / gamma
    noise_scale = jnp.sqrt(2.0 / gamma)
    ug = u.apply(g)
    # Coefficients grouped as (1/γ)·c·(U g), which for U = 1 rounds exactly as the unit-mass
    # formulas did (chaotic targets, e.g. a 1-D Cauchy, amplify last-bit differences).
    x_mid = x + e1a * v + (1.0 / gamma) * (a - e1a) * ug + noise_scale * u.apply_sqrt(w.w1)
    ld_mid, g_mid = value_and_grad_finite(flat_ld, x_mid)
    ug_mid = u.apply(g_mid)
    x_new = (
        x
        + one_minus_exp_neg(gamma * h) / gamma * v
        + (1.0 / gamma) * h * one_minus_exp_neg(gamma * (h - a)) * ug_mid
        + noise_scale * u.apply_sqrt(w.w2)
    )
    v_new = (
        jnp.exp(-gamma * h) * v
        + h * jnp.exp(-gamma * (h - a)) * ug_mid
        + jnp.sqrt(2.0 * gamma) * u.apply_sqrt(w.w3)
    )
    return x_new, v_new, jnp.isfinite(ld_mid)


def _overdamped_step(key, x, v, g, flat_ld, h, gamma, u):
    del gamma
    key_alpha, key_b = jax.random.split(key)
    alpha = jax.random.uniform(key_alpha, (), x.dtype)
    b_a, b_h = overdamped_brownian_pair(key_b, h, alpha, x.shape, x.dtype)
    x_mid = x + alpha * h * u.apply(g) + jnp.sqrt(2.0) * u.apply_sqrt(b_a)
    ld_mid, g_mid = value_and_grad_finite(flat_ld, x_mid)
    x_new = x + h * u.apply(g_mid) + jnp.sqrt(2.0) * u.apply_sqrt(b_h)
    return x_new, v, jnp.isfinite(ld_mid)


def max_energy_rise(dim: int):
    """Largest rise of H = -log p(x) + |v|²/(2u) in one step that counts as thermal.

    At stationarity one step changes H = -log p(x) + vᵀU⁻¹v/2 by the Ornstein–Uhlenbeck exchange
    of kinetic energy
    (variance (1 - e^{-2γh}) ≤ 1 per coordinate, so sd ≤ sqrt(d)) plus a small discretisation
    error; a numerically unstable step (h times the local frequency beyond the integrator's
    stability limit, e.g. non-centred eight schools at tau ≈ 100, where theta's curvature is
    tau²/sigma²) multiplies H by a large factor per step. 20 + 10 sqrt(d) nats is ≥ 10 sds beyond
    the thermal exchange: crossing it is treated as a non-finite step (undone, velocity
    reversed), as NUTS treats an energy error above 1000 as a divergence.
    """
    return 20.0 + 10.0 * jnp.sqrt(jnp.asarray(dim, jnp.float32))


def build_kernel(variant: str = "kinetic") -> Callable:
    """Return kernel(rng_key, state, logdensity_fn, step_size, inverse_mass_matrix=1.0,
    num_steps=1, friction=1.0), BlackJAX's kernel signature (as ``blackjax.hmc``'s).

    ``num_steps`` (static) steps of size ``step_size`` are taken in a lax.scan. A step that meets a
    non-finite density or gradient (at the midpoint or the end point), or raises the energy by
    more than ``max_energy_rise`` (an unstable step), is undone and the velocity reversed, as a
    rejected proposal of generalised HMC is (Horowitz 1991): the chain turns back at the edge of
    the region where the density is defined instead of retrying the same move (keeping the
    velocity made that edge sticky: on N(0, 1) cut at x > 1.5 the means of three runs were
    0.63, 0.10, 1.06 against -0.139). ``info.diverging`` flags such a call.
    """
    if callable(variant):
        raise ValueError(
            "rmp.build_kernel takes variant ('kinetic' or 'overdamped'), not an integrator: "
            "RMP has its own randomized-midpoint step. BlackJAX's window_adaptation needs an "
            "acceptance rate, which an unadjusted sampler has not; use "
            "scoresample.window_adaptation(scoresample.rmp, logdensity_fn) instead."
        )
    check_choice("variant", variant, VARIANTS)
    one_step = _kinetic_step if variant == "kinetic" else _overdamped_step

    def kernel(
        rng_key,
        state: RMPState,
        logdensity_fn: Callable,
        step_size,
        inverse_mass_matrix=1.0,
        num_steps: int = 1,
        friction=DEFAULT_FRICTION,
    ):
        x, unravel = ravel_pytree(state.position)
        v, _ = ravel_pytree(state.velocity)
        g, _ = ravel_pytree(state.logdensity_grad)
        flat_ld = lambda y: logdensity_fn(unravel(y))
        u = inverse_mass(inverse_mass_matrix)

        def body(carry, key):
            x, v, ld, g, num_reflected = carry
            x_new, v_new, mid_ok = one_step(key, x, v, g, flat_ld, step_size, friction, u)
            ld_new, g_new = value_and_grad_finite(flat_ld, x_new)
            ok = mid_ok & jnp.isfinite(ld_new) & jnp.all(jnp.isfinite(v_new))
            energy = lambda ld, v: u.kinetic_energy(v) - ld
            ok = ok & (energy(ld_new, v_new) - energy(ld, v) < max_energy_rise(x.shape[-1]))
            keep = lambda new, old: jnp.where(ok, new, old)
            carry = (
                keep(x_new, x),
                keep(v_new, -v),
                keep(ld_new, ld),
                keep(g_new, g),
                num_reflected + (~ok).astype(jnp.int32),
            )
            return carry, None

        keys = jax.random.split(rng_key, num_steps)
        init_carry = (x, v, state.logdensity, g, jnp.asarray(0, jnp.int32))
        (x, v, ld, g, num_reflected), _ = jax.lax.scan(body, init_carry, keys)
        new_state = RMPState(unravel(x), unravel(v), ld, unravel(g))
        info = RMPInfo(
            diverging=num_reflected > 0,
            num_reflected=num_reflected,
            num_grad_evals=jnp.asarray(2 * num_steps, jnp.int32),
            num_density_evals=jnp.asarray(0, jnp.int32),
        )
        return new_state, info

    return kernel


def as_top_level_api(
    logdensity_fn: Callable,
    step_size,
    inverse_mass_matrix=1.0,
    num_steps: int = 1,
    *,
    friction=DEFAULT_FRICTION,
    variant: str = "kinetic",
) -> SamplingAlgorithm:
    """BlackJAX-style RMP: ``alg.init(position, rng_key)``, ``alg.step(rng_key, state)``.

    Arguments in ``blackjax.hmc``'s order. step_size: h, no default (0.5–1 for a target of unit
    scale; may be traced, e.g. adapted inside ``jit``). inverse_mass_matrix: U, a scalar, a flat
    (d,) diagonal or a dense (d, d) matrix (default 1: the target should then be of unit scale;
    ``scoresample.window_adaptation`` returns U and h). num_steps: steps per ``step`` (static).
    friction: γ (default 1, measured; see the module docstring). variant: "kinetic" (default)
    or "overdamped".
    """
    validate_params(step_size, friction, num_steps, variant)
    kernel = build_kernel(variant)

    def init_fn(position, rng_key=None):
        return init(position, logdensity_fn, rng_key, inverse_mass_matrix)

    def step_fn(rng_key, state):
        return kernel(
            rng_key, state, logdensity_fn, step_size, inverse_mass_matrix, num_steps, friction
        )

    return SamplingAlgorithm(init_fn, step_fn)


rmp = SamplingAPI(as_top_level_api, init, build_kernel)


def spec(friction=None, num_steps: int = 5, variant: str = "kinetic") -> SamplerSpec:
    """RMP for the NumPyro front: flat whitened positions, unit inverse mass, adapted step size.

    friction: None (default) lets warmup tune γ from the chains' draws
    (``scoresample.adapt.friction``: γ = 1/RMS whitened scale, starting from 1); a number fixes it.
    The step-size probe is the energy error of one velocity-Verlet step (see
    ``scoresample.diffusion.integrators.leapfrog_energy_error``), one extra gradient per warmup
    iteration; the acceptance min(1, e^{-ΔH}) is averaged by dual averaging in the warmup.
    """
    validate_params(None, DEFAULT_FRICTION if friction is None else friction, num_steps, variant)
    kernel = build_kernel(variant)
    tuned = friction is None and variant == "kinetic"
    fixed = DEFAULT_FRICTION if friction is None else friction

    def init_fn(rng_key, position, logdensity_fn):
        return init(position, logdensity_fn, rng_key)

    def step_fn(rng_key, state, logdensity_fn, step_size, friction=fixed):
        return kernel(rng_key, state, logdensity_fn, step_size, 1.0, num_steps, friction)

    # A one-step leapfrog of size ε is the MALA proposal x + (ε²/2)∇log p + ε ξ, so for the
    # overdamped variant (drift h ∇log p, noise sqrt(2h)) the matching probe has ε = sqrt(2h).
    probe_step = (lambda h: h) if variant == "kinetic" else (lambda h: jnp.sqrt(2.0 * h))

    def probe(rng_key, state, logdensity_fn, step_size):
        delta = leapfrog_energy_error(
            rng_key,
            state.position,
            state.logdensity,
            state.logdensity_grad,
            logdensity_fn,
            probe_step(step_size),
        )
        return jnp.minimum(1.0, jnp.exp(-delta)), 1

    return SamplerSpec(
        init_fn,
        step_fn,
        probe,
        is_population=False,
        uses_gradients=True,
        reflects=True,
        friction=DEFAULT_FRICTION if tuned else None,
        unadjusted=True,
    )
