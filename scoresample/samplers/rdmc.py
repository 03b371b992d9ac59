"""Reverse diffusion Monte Carlo (rdMC): the reverse OU process driven by estimated scores.

Reference: Huang, Dong, Hao, Ma & Zhang (2024), "Reverse Diffusion Monte Carlo", ICLR
(ALGORITHMS.md §2). No score is learned: at each step of the reverse process the score of the
noised target is estimated from the target itself, by a score estimator of
``scoresample.score`` (``langevin_score``: IS warm start + MALA/ULA chains, the paper's rdMC; or
``importance_score``: gradient-free, as ZOD-MC).

One ``step`` is one complete reverse trajectory, so consecutive draws are independent:
    y_0 ~ N(0, I)                                   (the OU reference, exact when p = N(0, I))
    for k = 0..K-1, s_k on a grid from T down to s_min:
        ŝ = estimate of ∇log p_{s_k}(y);   y ← e^h y + 2 (e^h - 1) ŝ + sqrt(e^{2h} - 1) ξ,
        h = s_k - s_{k+1}   (exponential integrator, score frozen; ``diffusion.ou``)
    output "sample" (default): one more estimator call at s_min returns a draw of the denoising
        posterior q_{s_min}(·|y) (its last inner-chain state). If y ~ p_{s_min}, such a draw is
        exactly ~ p, so no small-noise bias is left: our addition (the paper returns y itself).
    output "mean": the denoised point m̂_{s_min}(y) (slightly too narrow, by O(s_min)).
    output "noisy": y itself (slightly too wide, by O(s_min)), as in the paper.

Defaults, in the whitened coordinates of the NumPyro front (target ≈ unit scale): T = 3
(the reference mismatch decays like e^{-2T}), K = 32 geometric steps down to s_min = 0.02
(the frozen-score step over-disperses: measured sd of a 10-d N(0, I), 1000 draws, +6% at K = 24,
+2.5% at K = 48; with the estimator's noise, eight schools' sds came out +2% to +11% at K = 24);
SBC (Talts et al. 2018; benchmarks/calibration.py, S = 1000, conjugate normal-normal): ranks
uniform (p = 0.63), but posterior sds 4.5% too wide at K = 32, 3.4% at K = 64, 2.0% at K = 128,
and unchanged by 4x the importance draws and 2x the inner chains: the excess comes from the outer
frozen-score step. K = 32 is kept (half the cost of 64); pass num_steps=128 for sds within 2%.
The estimator's defaults are in ``scoresample.score.langevin.LangevinParams``. All were measured on
the 2-D unequal four-mode mixture, the d = 8 two-mode mixture and eight schools (tests/test_rdmc.py,
benchmarks/rdmc.py).

The adapted MALA step multipliers are kept per grid point in the state and carried from one
trajectory to the next (burn-in adapts them; the kept inner steps use fixed steps).
Cost per draw: (K + 1) estimator calls, i.e. (K + 1) (M density evaluations + n (J + 1)
gradients) for ``langevin``; one extra density evaluation for "mean" / "noisy" outputs.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm
from jax.flatten_util import ravel_pytree

from scoresample.diffusion.ou import GRIDS, reverse_ou_step, time_grid
from scoresample.samplers.base import (
    SamplerSpec,
    SamplingAPI,
    check_choice,
    check_positive,
    check_positive_int,
    standardization,
    value_and_grad_finite,
)
from scoresample.score.importance import (
    ImportanceParams,
    importance_score,
    validate_importance_params,
)
from scoresample.score.langevin import LangevinParams, langevin_score, validate_langevin_params

__all__ = [
    "RDMCInfo",
    "RDMCState",
    "as_top_level_api",
    "build_kernel",
    "init",
    "rdmc",
    "spec",
    "validate_params",
]

ESTIMATORS = ("langevin", "importance")
OUTPUTS = ("sample", "mean", "noisy")
DEFAULT_T = 3.0
DEFAULT_NUM_STEPS = 32
DEFAULT_S_MIN = 0.02


class RDMCState(NamedTuple):
    """position (pytree), its log density, and the inner MALA step multipliers, one per grid
    point (K + 1,) (unused, ones, for the importance estimator)."""

    position: object
    logdensity: jax.Array
    step_sizes: jax.Array


class RDMCInfo(NamedTuple):
    """diverging: a score estimate or the trajectory was non-finite (input state returned);
    min_ess: smallest importance ESS along the trajectory; acceptance: mean inner acceptance."""

    diverging: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array
    min_ess: jax.Array
    acceptance: jax.Array

    @property
    def is_divergent(self):  # BlackJAX's name
        return self.diverging


def estimator_params(estimator: str = "langevin", **kw):
    """The estimator's params NamedTuple from keyword arguments (unknown keys are an error)."""
    check_choice("estimator", estimator, ESTIMATORS)
    cls = LangevinParams if estimator == "langevin" else ImportanceParams
    bad = set(kw) - set(cls._fields)
    if bad:
        raise ValueError(f"unknown {estimator} estimator parameter(s) {sorted(bad)}")
    params = cls(**kw)
    if estimator == "langevin":
        validate_langevin_params(**{k: v for k, v in params._asdict().items() if k != "adapt"})
    else:
        validate_importance_params(*params)
    return params


def validate_params(
    T=DEFAULT_T,
    num_steps=DEFAULT_NUM_STEPS,
    s_min=DEFAULT_S_MIN,
    grid="geometric",
    estimator="langevin",
    output="sample",
):
    """Raise ValueError, naming the parameter, for an invalid hyper-parameter."""
    check_positive("T", T)
    check_positive_int("num_steps", num_steps)
    check_positive("s_min", s_min)
    if not float(s_min) < float(T):
        raise ValueError(f"s_min must be smaller than T, got s_min={s_min!r}, T={T!r}")
    check_choice("grid", grid, GRIDS)
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("output", output, OUTPUTS)


def _score_fn(estimator):
    return langevin_score if estimator == "langevin" else importance_score


def _call_cost(estimator, params):
    """(gradients, densities) of one estimator call: static."""
    if estimator == "langevin":
        return params.num_chains * (params.num_inner_steps + 1), params.num_is_samples
    return 0, params.num_samples


def init(
    position,
    logdensity_fn: Callable,
    num_steps: int = DEFAULT_NUM_STEPS,
    step_size=1.0,
    uses_gradients: bool = True,
) -> RDMCState:
    """State at ``position``: one gradient (or, if not uses_gradients, one density) evaluation."""
    flat, unravel = ravel_pytree(position)
    flat_ld = lambda y: logdensity_fn(unravel(y))
    if uses_gradients:
        ld, _ = value_and_grad_finite(flat_ld, flat)
    else:
        ld = flat_ld(flat)
        ld = jnp.where(jnp.isfinite(ld), ld, -jnp.inf)
    steps = jnp.full((num_steps + 1,), step_size, flat.dtype)
    return RDMCState(position, ld, steps)


def build_kernel(estimator: str = "langevin", output: str = "sample") -> Callable:
    """Return kernel(rng_key, state, logdensity_fn, T, num_steps, s_min, grid, params).

    ``params`` is the estimator's params NamedTuple (``estimator_params``); T, num_steps, s_min
    and grid are Python numbers / strings (static). One call = one reverse trajectory.
    """
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("output", output, OUTPUTS)
    score_fn = _score_fn(estimator)
    adaptive = estimator == "langevin"

    def kernel(
        rng_key,
        state: RDMCState,
        logdensity_fn: Callable,
        T=DEFAULT_T,
        num_steps=DEFAULT_NUM_STEPS,
        s_min=DEFAULT_S_MIN,
        grid="geometric",
        params=None,
    ):
        params = estimator_params(estimator) if params is None else params
        x, unravel = ravel_pytree(state.position)
        flat_ld = lambda y: logdensity_fn(unravel(y))
        s_grid = jnp.asarray(time_grid(T, s_min, num_steps, grid), x.dtype)
        key_init, key_traj, key_final = jax.random.split(rng_key, 3)
        y0 = jax.random.normal(key_init, x.shape, x.dtype)

        def estimate(key, y, s, c):
            p = params._replace(step_size=c) if adaptive else params
            score, info = score_fn(key, y, s, flat_ld, p)
            c_new = info.step_size if adaptive else c
            acc = info.acceptance if adaptive else jnp.ones((), x.dtype)
            return score, info, c_new, acc

        def body(y, inp):
            key, s, s_next, c = inp
            k_est, k_step = jax.random.split(key)
            score, info, c_new, acc = estimate(k_est, y, s, c)
            y_new = reverse_ou_step(k_step, y, score, s - s_next)
            ok = info.ok & jnp.all(jnp.isfinite(y_new))
            return y_new, (ok, info.ess, c_new, acc)

        keys = jax.random.split(key_traj, num_steps)
        inputs = (keys, s_grid[:-1], s_grid[1:], state.step_sizes[:-1])
        y, (oks, ess, c_traj, acc) = jax.lax.scan(body, y0, inputs)
        ok = jnp.all(oks)
        n_grad, n_dens = _call_cost(estimator, params)
        n_grad, n_dens = num_steps * n_grad, num_steps * n_dens
        c_last = state.step_sizes[-1]
        if output == "noisy":
            position, ld = y, flat_ld(y)
            n_dens += 1
        else:
            _, info, c_last, acc_last = estimate(key_final, y, s_grid[-1], c_last)
            ok = ok & info.ok
            ess = jnp.concatenate([ess, info.ess[None]])
            acc = jnp.concatenate([acc, acc_last[None]])
            g, d = _call_cost(estimator, params)
            n_grad, n_dens = n_grad + g, n_dens + d
            if output == "sample":
                position, ld = info.sample, info.sample_logdensity
            else:
                position, ld = info.mean, flat_ld(info.mean)
                n_dens += 1
        ld = jnp.where(jnp.isfinite(ld), ld, -jnp.inf)
        ok = ok & jnp.isfinite(ld) & jnp.all(jnp.isfinite(position))
        steps = jnp.concatenate([c_traj, jnp.reshape(c_last, (1,))]).astype(state.step_sizes.dtype)
        proposed = RDMCState(unravel(position), ld, steps)
        new_state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), proposed, state)
        info = RDMCInfo(
            diverging=~ok,
            num_grad_evals=jnp.asarray(n_grad, jnp.int32),
            num_density_evals=jnp.asarray(n_dens, jnp.int32),
            min_ess=jnp.min(ess),
            acceptance=jnp.mean(acc),
        )
        return new_state, info

    return kernel


def as_top_level_api(
    logdensity_fn: Callable,
    T: float = DEFAULT_T,
    num_steps: int = DEFAULT_NUM_STEPS,
    s_min: float = DEFAULT_S_MIN,
    grid: str = "geometric",
    estimator: str = "langevin",
    output: str = "sample",
    *,
    reference_mean=0.0,
    reference_scale=1.0,
    **estimator_kwargs,
) -> SamplingAlgorithm:
    """BlackJAX-style rdMC: ``alg.init(position)``, ``alg.step(rng_key, state)``.

    T: initial noise level (default 3). num_steps: K outer steps (default 32). s_min: final noise
    level (default 0.02). grid: "geometric" (default) or "uniform". estimator: "langevin"
    (default, rdMC) or "importance" (gradient-free). output: "sample" (default), "mean", "noisy".
    reference_mean, reference_scale (scalars or flat (d,) arrays): the reverse process runs in
    z = (x - mean) / scale, whose reference is N(0, I); the defaults suit a target of unit scale
    around the origin, ``scoresample.window_adaptation`` returns them for any other.
    estimator_kwargs: fields of LangevinParams / ImportanceParams (e.g. num_chains=8).
    Positions and log densities in the state are the target's (x, log p(x)).
    """
    validate_params(T, num_steps, s_min, grid, estimator, output)
    params = estimator_params(estimator, **estimator_kwargs)
    kernel = build_kernel(estimator, output)
    step0 = getattr(params, "step_size", 1.0)
    coords = standardization(logdensity_fn, reference_mean, reference_scale)

    def init_fn(position, rng_key=None):
        del rng_key
        return init(position, logdensity_fn, num_steps, step0, estimator == "langevin")

    def step_fn(rng_key, state):
        z = coords.to_z(state.position)
        log_det = coords.log_det(ravel_pytree(z)[0])
        z_state = state._replace(position=z, logdensity=state.logdensity + log_det)
        new, info = kernel(rng_key, z_state, coords.logdensity, T, num_steps, s_min, grid, params)
        return new._replace(
            position=coords.to_x(new.position), logdensity=new.logdensity - log_det
        ), info

    return SamplingAlgorithm(init_fn, step_fn)


rdmc = SamplingAPI(as_top_level_api, init, build_kernel)


def spec(
    T=DEFAULT_T,
    num_steps=DEFAULT_NUM_STEPS,
    s_min=DEFAULT_S_MIN,
    grid="geometric",
    estimator="langevin",
    output="sample",
    **estimator_kwargs,
) -> SamplerSpec:
    """rdMC for the NumPyro front (flat whitened positions).

    No outer step size: ``step_size_probe`` is None, and the adapter's step size is not used; the
    inner MALA step is adapted inside the estimator (``score.langevin``) and carried in the state.
    """
    validate_params(T, num_steps, s_min, grid, estimator, output)
    params = estimator_params(estimator, **estimator_kwargs)
    kernel = build_kernel(estimator, output)
    step0 = getattr(params, "step_size", 1.0)
    uses_gradients = estimator == "langevin"

    def init_fn(rng_key, position, logdensity_fn):
        del rng_key
        return init(position, logdensity_fn, num_steps, step0, uses_gradients)

    def step_fn(rng_key, state, logdensity_fn, step_size):
        del step_size
        return kernel(rng_key, state, logdensity_fn, T, num_steps, s_min, grid, params)

    return SamplerSpec(init_fn, step_fn, None, is_population=False, uses_gradients=uses_gradients)
