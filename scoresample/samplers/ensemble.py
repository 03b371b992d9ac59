"""Gradient-free ensemble Föllmer sampling: one reverse-diffusion trajectory per step.

References:
    Riel & Bischoff, "Enhancing score-based sampling methods with ensembles", arXiv 2401.17539
    (v2: "Gradient-free score-based sampling methods with ensembles", Applied Mathematical
    Modelling 2025): reverse-diffusion drifts estimated from a particle ensemble, no gradients.
    Huang, Jiao, Kang, Liao, Liu, Liu (2021), "Schrödinger–Föllmer sampler: sampling without
    ergodicity": the Föllmer SDE, its Monte Carlo (Stein-form) drift and the Euler scheme.
    ALGORITHMS.md §4.

Every step runs the whole population through one Föllmer trajectory: X_0 = 0, K Euler steps of
size h = 1/K on t_k = k h,

    X_{k+1} = X_k + h b̂(X_k, t_k) + √h ξ_k,

and returns position = mean + scale · X_K (so consecutive draws are independent given the
reference; the previous position only fixes the shapes). The drift b̂ is one of
    estimator="ensemble": the pooled balance-heuristic estimator (``scoresample.score.ensemble``,
        the ALGORITHMS.md reconstruction of the paper's ensemble idea; see that module for what
        could and could not be confirmed against the paper);
    estimator="follmer": the per-particle Monte Carlo estimate of Huang et al. 2021
        (``scoresample.score.follmer``; the estimator of ``blackjax.vi.schrodinger_follmer``).
Both draw M = ``num_samples`` proposals per particle per Euler step.

Reference (the trap of ALGORITHMS.md §4). The Föllmer process targets π relative to N(0, I):
modes several units from the origin are found by few proposals and their weights come out wrong.
So the trajectory runs in u = (x - reference_mean) / reference_scale, i.e. it samples
π_u(u) ∝ π(mean + c u) and returns mean + c u. The NumPyro front sets mean and scale from its
preconditioner (whitening from the pooled population, refined in warmup) times its ``inflation``
(default in ``scoresample.infer.ensemble``); the BlackJAX-style API takes them as arguments.

Cost per step, per particle: K·M density evaluations plus 1 for the final position's density;
never a gradient (num_grad_evals = 0), so log π may be non-differentiable (step functions,
``jax.pure_callback`` simulators). A particle whose final density is not finite, or whose
weights were all zero at some step, keeps its previous state and is marked ``diverging``.

Defaults (measured on this repository's targets through the NumPyro front, N = 128–256
particles, 100 warmup iterations; tests/test_ensemble.py, benchmarks/results/ensemble.md):
K = 32 Euler steps and M = 4 proposals per particle and step (129 evaluations per draw) give
mode weights within 0.015 on the 2-D unequal 4-mode mixture and sds within 4.5% on a d = 10
Gaussian; M = 8 was no better on the mixture. warmup_widening W = 4 (reference widened by
c = W^(1/d) during warmup only): with W = 1 the warmup locked onto the modes it found first
(weights 0/0/.43/.57 and 1/0/0/0 for true .1/.2/.3/.4, two seeds); W = 2.25, 4 and 9 all gave
errors ≤ 0.011; on the d = 10 Gaussian W = 4 and 16 gave sd errors of 4% and 4.5%. Sampling
uses the whitened reference itself (inflation 1): inflation 1.5 and 2 made the d = 10 sds 10%
and 19% too wide, because self-normalised importance sampling with few effective points shrinks
the estimated posterior mean towards the proposal's centre, i.e. weakens the drift, more so the
narrower the target is relative to the reference.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm
from jax.flatten_util import ravel_pytree

from scoresample.samplers.base import (
    SamplerSpec,
    SamplingAPI,
    check_choice,
    check_positive,
    check_positive_int,
)
from scoresample.score.ensemble import pooled_drift_from_values
from scoresample.score.follmer import follmer_drift_from_values, log_follmer_ratio

__all__ = [
    "EnsembleState",
    "EnsembleInfo",
    "init",
    "build_kernel",
    "as_top_level_api",
    "ensemble",
    "spec",
    "ESTIMATORS",
]

ESTIMATORS = ("ensemble", "follmer")
DEFAULT_NUM_STEPS = 32
DEFAULT_NUM_SAMPLES = 4
DEFAULT_WARMUP_WIDENING = 4.0


class EnsembleState(NamedTuple):
    """position: the population (pytree, leading axis N); logdensity: (N,) at position."""

    position: object
    logdensity: jax.Array


class EnsembleInfo(NamedTuple):
    """diverging (N,): the particle kept its previous state; ess (N,): the smallest effective
    sample size of its drift estimate along the trajectory; costs per particle."""

    diverging: jax.Array
    ess: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array

    @property
    def is_divergent(self):  # BlackJAX's name
        return self.diverging


def validate_params(
    num_steps=DEFAULT_NUM_STEPS, num_samples=DEFAULT_NUM_SAMPLES, estimator="ensemble"
):
    """Raise ValueError, naming the parameter, for an invalid hyper-parameter."""
    check_positive_int("num_steps", num_steps)
    check_positive_int("num_samples", num_samples)
    check_choice("estimator", estimator, ESTIMATORS)


def _flatten_population(position):
    one = jax.tree.map(lambda a: a[0], position)
    _, unravel = ravel_pytree(one)
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])(position)
    return flat, unravel


def init(position, logdensity_fn: Callable) -> EnsembleState:
    """The population ``position`` (pytree with a leading particle axis N ≥ 1) and its densities
    (N density evaluations)."""
    flat, unravel = _flatten_population(position)
    ld = jax.vmap(lambda y: logdensity_fn(unravel(y)))(flat)
    return EnsembleState(position, ld)


def _population_follmer(x, s, y, log_f):
    """Per-particle Föllmer drifts: particle i uses only its own proposals y[i] (M, d)."""
    return jax.vmap(follmer_drift_from_values, in_axes=(0, None, 0, 0))(x, s, y, log_f)


def build_kernel(estimator: str = "ensemble") -> Callable:
    """Return kernel(rng_key, state, logdensity_fn, num_steps, num_samples, reference_mean=0.,
    reference_scale=1.) -> (state, info): one Föllmer trajectory of the whole population."""
    check_choice("estimator", estimator, ESTIMATORS)

    def drift_fn(u, s, z, ld_u):
        n, m, d = z.shape
        y = u[:, None, :] + jnp.sqrt(s) * z
        log_f = log_follmer_ratio(jax.vmap(jax.vmap(ld_u))(y), y)
        if estimator == "ensemble":
            return pooled_drift_from_values(u, s, y.reshape(n * m, d), log_f.reshape(n * m))
        return _population_follmer(u, s, y, log_f)

    def kernel(
        rng_key,
        state: EnsembleState,
        logdensity_fn: Callable,
        num_steps: int = DEFAULT_NUM_STEPS,
        num_samples: int = DEFAULT_NUM_SAMPLES,
        reference_mean=0.0,
        reference_scale=1.0,
    ):
        old, unravel = _flatten_population(state.position)
        n, d = old.shape
        flat_ld = lambda y: logdensity_fn(unravel(y))
        mean = jnp.broadcast_to(jnp.asarray(reference_mean, old.dtype), (d,))
        scale = jnp.broadcast_to(jnp.asarray(reference_scale, old.dtype), (d,))
        # The density of u = (x - mean) / scale, up to the constant log|scale| (which cancels).
        ld_u = lambda u: flat_ld(mean + scale * u)
        h = jnp.asarray(1.0 / num_steps, old.dtype)

        def body(carry, inp):
            u, ok, ess_min = carry
            noise, k = inp
            b, ess, step_ok = drift_fn(u, 1.0 - k * h, noise[:, :num_samples], ld_u)
            u = u + h * b + jnp.sqrt(h) * noise[:, num_samples]
            return (u, ok & step_ok, jnp.minimum(ess_min, ess)), None

        # All Gaussian draws of the trajectory at once: proposals and Euler noise (one RNG call
        # keeps compilation short; threefry compiles slowly on CPU).
        noise = jax.random.normal(rng_key, (num_steps, n, num_samples + 1, d), old.dtype)
        steps = jnp.arange(num_steps, dtype=old.dtype)
        carry0 = (
            jnp.zeros_like(old),
            jnp.ones(n, bool),
            jnp.full(n, jnp.inf, old.dtype),
        )
        (u, ok, ess), _ = jax.lax.scan(body, carry0, (noise, steps))
        new = mean + scale * u
        ld_new = jax.vmap(flat_ld)(new)
        ok = ok & jnp.isfinite(ld_new) & jnp.all(jnp.isfinite(new), axis=-1)
        flat = jnp.where(ok[:, None], new, old)
        ld_out = jnp.where(ok, ld_new, state.logdensity)
        info = EnsembleInfo(
            diverging=~ok,
            ess=ess,
            num_grad_evals=jnp.asarray(0, jnp.int32),
            num_density_evals=jnp.asarray(num_steps * num_samples + 1, jnp.int32),
        )
        return EnsembleState(jax.vmap(unravel)(flat), ld_out), info

    return kernel


def as_top_level_api(
    logdensity_fn: Callable,
    num_steps: int = DEFAULT_NUM_STEPS,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    estimator: str = "ensemble",
    reference_mean=0.0,
    reference_scale=1.0,
) -> SamplingAlgorithm:
    """BlackJAX-style ensemble Föllmer sampler: ``alg.init(population)``, ``alg.step(key, state)``.

    Args:
        logdensity_fn: log π on a pytree position (unnormalised, need not be differentiable).
        num_steps: K Euler steps per trajectory (default 32, measured). num_samples: M proposals
            per particle and step (default 4, measured). estimator: "ensemble" (pooled, default)
            or "follmer" (per particle). reference_mean, reference_scale: the trajectory samples
            (x - mean) / scale (scalars or flat (d,) arrays); choose the scale of the target's
            spread or wider (ALGORITHMS.md §4: an N(0, I) reference misses distant modes).
    The population is the leading axis of the position given to ``init`` (N ≥ 2 for the pooled
    estimator to pool anything).
    """
    validate_params(num_steps, num_samples, estimator)
    if not isinstance(reference_scale, jax.Array):
        if jnp.ndim(reference_scale) == 0:
            check_positive("reference_scale", reference_scale)
    kernel = build_kernel(estimator)

    def init_fn(position, rng_key=None):
        del rng_key
        return init(position, logdensity_fn)

    def step_fn(rng_key, state):
        return kernel(
            rng_key, state, logdensity_fn, num_steps, num_samples, reference_mean, reference_scale
        )

    return SamplingAlgorithm(init_fn, step_fn)


ensemble = SamplingAPI(as_top_level_api, init, build_kernel)


def spec(
    num_steps: int = DEFAULT_NUM_STEPS,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    estimator: str = "ensemble",
    warmup_widening: float = DEFAULT_WARMUP_WIDENING,
) -> SamplerSpec:
    """The sampler for the NumPyro front: a population spec (the chains are the particles) that
    never uses gradients. It runs in the front's whitened coordinates with reference N(0, I)
    there; the front's preconditioner (times ``inflation``) is the reference scale. There is no
    step size to adapt (the time grid is fixed by ``num_steps``), so ``step_size`` is unused.

    warmup_widening: W ≥ 1. During warmup the reference is widened by c = W^(1/d) on top of the
    front's scale (its volume by W), so that the first, badly scaled trajectories still reach
    distant modes and the Welford windows do not lock onto the modes found first; sampling uses
    c = 1. W is a volume factor because the importance weights' variance grows like c^d.
    """
    validate_params(num_steps, num_samples, estimator)
    check_positive("warmup_widening", warmup_widening)
    if warmup_widening < 1.0:
        raise ValueError(f"warmup_widening must be >= 1, got {warmup_widening!r}")
    kernel = build_kernel(estimator)

    def init_fn(rng_key, position, logdensity_fn):
        del rng_key
        return init(position, logdensity_fn)

    def step_fn(rng_key, state, logdensity_fn, step_size):
        del step_size
        return kernel(rng_key, state, logdensity_fn, num_steps, num_samples)

    def warmup_step_fn(rng_key, state, logdensity_fn, step_size):
        del step_size
        c = float(warmup_widening) ** (1.0 / state.position.shape[-1])
        return kernel(rng_key, state, logdensity_fn, num_steps, num_samples, 0.0, c)

    warmup_step = None if warmup_widening == 1.0 else warmup_step_fn
    return SamplerSpec(
        init_fn, step_fn, None, is_population=True, uses_gradients=False, warmup_step=warmup_step
    )
