"""Controlled Monte Carlo diffusions (CMCD) with exact weights, resampling and evidence.

References:
    Vargas, Padhy, Blessing & Nüsken (2024), "Transport meets variational inference: controlled
    Monte Carlo diffusions", ICLR (the discretised forward/backward kernels and their weights).
    Chen, Vargas, ... (2025), "Sequential controlled Langevin diffusions" (SCLD), ICLR: blocks
    with resampling, MCMC moves after resampling, log-variance training on sub-trajectories.
    ALGORITHMS.md §5 states the maths used here.

The sampler works on flat positions in coordinates where the reference is q0 = N(0, I) (the
NumPyro front's whitened z; the BlackJAX-style API maps a reference N(m, s² I) to it). With the
geometric path π_k ∝ q0^{1-β_k} γ^{β_k} and s_k = ∇log π_k, one sweep draws x_0 ~ q0 for each of
N particles and, for k = 1..K,
    forward   F_k(x_k | x_{k-1}) = N(x_{k-1} + ε_k (s_k(x_{k-1}) + u_k(x_{k-1})), 2ε_k I)
    backward  B_k(x_{k-1} | x_k) = N(x_k + ε_k (s_k(x_k) - u_k(x_k)), 2ε_k I)
    log w = log γ(x_K) - log q0(x_0) + Σ_k [log B_k - log F_k],
so E[w] = Z for any control u and step sizes ε_k > 0, constant or varying with k (both kernels
of step k use the same ε_k) (u = 0: training-free, the "uncorrected" Langevin
AIS of Thin et al. 2021 / Geffner & Domke 2021). This is NOT the AIS increment
Σ (β_k - β_{k-1})(log γ - log q0), which is biased with unadjusted moves. The weights are
accumulated step by step in the telescoped form
    Δ_k = log π̃_k(x_k) - log π̃_{k-1}(x_{k-1}) + log B_k - log F_k,
so a block of steps a+1..b has the SCLD incremental weight log π̃_b(x_b) - log π̃_a(x_a) +
Σ_block [log B - log F]. At each block end the weights are normalised, the evidence increment
log Σ_i W_i e^{Δ_i} added to log Ẑ, and the particles resampled (systematic) when
ESS < ess_threshold · N, followed (optionally) by π_b-invariant MALA moves. The sweep ends with a
systematic resampling, so the recorded draws are equally weighted.

Cost per particle and sweep: K + 1 gradient evaluations (x_0..x_K, each gradient cached for the
backward kernel of its step and the forward kernel of the next) plus one per MALA move.

Defaults and where they come from:
    num_steps K = 64: a middle value of the K ∈ {32, …, 256} range of Vargas et al. (2024);
        benchmarks/results/cmcd.md reports the error against K. Linear schedule: the simplest
        choice (no schedule comparison was measured; geometric, cosine and power are offered).
    ess_threshold 0.3: SCLD (Chen et al. 2025) and ALGORITHMS.md.
    num_blocks 4: a choice, not a measurement (SCLD resamples at a few points of the path);
        the tests use 8 on ManyWell.
    max_score_norm 1e3: the drift ε(s + u) is clipped per particle to norm ε·1e3 (both in the
        forward and in the backward kernel, so the weights stay exact): a guard against
        exploding target gradients (ALGORITHMS.md trap), far above the drifts of the test
        targets; not tuned.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.base import SamplingAlgorithm
from jax.flatten_util import ravel_pytree

from scoresample.diffusion.annealing import (
    SCHEDULES,
    STANDARD_NORMAL,
    Reference,
    annealed_logdensity,
    annealed_score,
    check_schedule,
    make_schedule,
)
from scoresample.samplers.base import (
    SamplerSpec,
    SamplingAPI,
    check_choice,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    value_and_grad_finite,
)

__all__ = [
    "CMCDState",
    "CMCDInfo",
    "Trajectory",
    "init",
    "build_kernel",
    "as_top_level_api",
    "cmcd",
    "spec",
    "sweep",
    "combine_log_z",
    "path_increments",
    "systematic_resampling",
    "step_sizes_per_step",
    "interpolated_step_sizes",
]

DEFAULT_NUM_STEPS = 64
DEFAULT_NUM_BLOCKS = 4
DEFAULT_ESS_THRESHOLD = 0.3
DEFAULT_MAX_SCORE_NORM = 1e3


class CMCDState(NamedTuple):
    """The population after a sweep (equally weighted, leading particle axis N).

    position: (N, ...) pytree; logdensity: (N,) log γ there; logdensity_grad: its gradient
    (cached for the step-size probe); log_z, ess, log_weights, diverged: the sweep's evidence
    estimate and weight diagnostics, per particle (see :class:`CMCDInfo`; NaN / False before the
    first sweep); control_params: the control's flat parameters, shape (1, P), or None for the
    zero control; opt_state: the control optimiser's state (or None). The control lives on a
    leading axis of size 1 so the NumPyro front, which selects per particle on every leaf with a
    leading axis N, treats it as a whole-population leaf.
    """

    position: Any
    logdensity: jax.Array
    logdensity_grad: Any
    log_z: jax.Array
    ess: jax.Array
    log_weights: jax.Array
    diverged: jax.Array
    loss: jax.Array
    control_params: Any = None
    opt_state: Any = None


def _empty_stats(n, dtype):
    nan = jnp.full((n,), jnp.nan, dtype)
    return nan, nan, nan, jnp.zeros((n,), bool), nan


class CMCDInfo(NamedTuple):
    """Per particle (N,) each, so NumPyro can collect them as extra fields of an ensemble kernel.

    log_z: the sweep's estimate log Ẑ (the same for every particle); ess: Kish ESS (in
    particles) of the final weights, before the final resampling; log_weights: log(N W_i Ẑ),
    the particles' unnormalised weights at the end (the full-path log w_i when no resampling
    happened within the sweep: mean(exp(log_weights)) = Ẑ); num_resampling: resampling events
    within the sweep (the final one excluded); diverging: the particle slot met a non-finite
    density or gradient during the sweep (its weight was set to zero); loss: the control's
    training loss (NaN when not training).
    """

    log_z: jax.Array
    ess: jax.Array
    log_weights: jax.Array
    num_resampling: jax.Array
    diverging: jax.Array
    loss: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array

    @property
    def is_divergent(self):  # BlackJAX's name
        return self.diverging


class Trajectory(NamedTuple):
    """What training a control needs from a sweep, per step k = 1..K (leading axis K):
    x_prev, score_prev = s_k(x_{k-1}); x_new, score_new = s_k(x_k) (clipped drifts are not
    stored: the control sees the raw s_k); fixed = log π̃_k(x_k) - log π̃_{k-1}(x_{k-1}) (the
    θ-free part of Δ_k); alive: the particle's weight is finite; block: block index of step k."""

    x_prev: jax.Array
    score_prev: jax.Array
    x_new: jax.Array
    score_new: jax.Array
    fixed: jax.Array
    alive: jax.Array
    block: jax.Array


# -- building blocks ---------------------------------------------------------------------------


def systematic_resampling(rng_key, log_weights):
    """Indices (N,) of a systematic resampling of normalised or unnormalised log weights."""
    n = log_weights.shape[0]
    w = jax.nn.softmax(log_weights)
    cdf = jnp.cumsum(w)
    u = (jax.random.uniform(rng_key, (), w.dtype) + jnp.arange(n, dtype=w.dtype)) / n
    return jnp.clip(jnp.searchsorted(cdf, u), 0, n - 1)


def kish_ess(log_weights):
    """(Σ w)² / Σ w² from log weights; 0 when every weight is zero."""
    lw = log_weights - jnp.max(log_weights)
    lw = jnp.where(jnp.isfinite(lw), lw, -jnp.inf)
    ess = jnp.exp(2 * jax.nn.logsumexp(lw) - jax.nn.logsumexp(2 * lw))
    return jnp.where(jnp.isfinite(ess), ess, 0.0)


def combine_log_z(log_z_per_sweep, axis=None):
    """Combine independent sweeps' estimates: log mean exp (unbiased in Z, as each sweep is).

    Accepts per-sweep values, or NumPyro's extra field (num_sweeps, N) / grouped arrays whose
    particle axis repeats the same value: duplicates do not change a mean of exponentials.
    """
    x = jnp.asarray(log_z_per_sweep)
    x = jnp.where(jnp.isnan(x), -jnp.inf, x)
    n = x.size if axis is None else x.shape[axis]
    return jax.nn.logsumexp(x, axis=axis) - jnp.log(n)


def _clip_drift(drift, max_norm):
    norm = jnp.linalg.norm(drift, axis=-1, keepdims=True)
    return drift * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-30))


def _gauss_logpdf(diff, eps):
    """log N(diff; 0, 2ε I) per particle, with its normaliser (ε per particle)."""
    d = diff.shape[-1]
    return -jnp.sum(diff**2, -1) / (4 * eps) - 0.5 * d * jnp.log(4 * jnp.pi * eps)


def _zero_control(params, x, t, score):
    del params, t, score
    return jnp.zeros_like(x)


def _block_of_steps(num_steps, num_blocks):
    """(block index per step k = 1..K, is-block-end flag per step) as numpy arrays."""
    ends = np.unique(np.round(np.linspace(0, num_steps, num_blocks + 1)).astype(int))[1:]
    block = np.searchsorted(ends, np.arange(1, num_steps + 1))
    is_end = np.isin(np.arange(1, num_steps + 1), ends)
    return block, is_end


def step_sizes_per_step(step_size, num_steps, dtype=None):
    """ε_1..ε_K (K,) from a scalar ε (every step) or an array of K per-step values.

    F_k and B_k both use ε_k (the kernels of step k); any positive sequence keeps E[w] = Z.
    """
    eps = jnp.asarray(step_size, dtype)
    if eps.ndim == 0:
        return jnp.full((num_steps,), eps)
    if eps.shape != (num_steps,):
        raise ValueError(
            f"step_size must be a scalar or an array of num_steps = {num_steps} values, "
            f"got shape {eps.shape}"
        )
    return eps


def interpolated_step_sizes(betas, start, end):
    """A step-size rule: ε_k = (1 - β_k) · start + β_k · end for k = 1..K, shape (K,).

    ``start`` suits π_k near the reference, ``end`` the narrowest region of the target (a
    Langevin step must stay below about twice the smallest local variance there, in reference
    units). π_k only develops the target's narrow regions as β_k → 1, so the early steps may be
    larger; with ``end`` ≪ ``start`` this buys K ε-time that a constant ε = ``end`` would not.
    Measured on Neal's funnel (tests/test_cmcd.py::test_funnel_log_z: start 0.09, end 1.35e-3
    in x units, i.e. ÷ 16 for the reference N(0, 4² I); a constant ε was biased by -0.17 or
    worse).
    """
    b = np.asarray(betas, np.float64)[1:]
    if not (float(start) > 0 and float(end) > 0):
        raise ValueError(f"start and end must be positive, got {start!r}, {end!r}")
    return (1.0 - b) * float(start) + b * float(end)


def _transition(x, score, u, step_size, max_score_norm):
    """Mean and ε (per particle) of the Gaussian kernel N(x + ε (s + u), 2ε I)."""
    eps = jnp.full(score.shape[:-1], step_size, score.dtype)
    return x + eps[..., None] * _clip_drift(score + u, max_score_norm), eps


def path_increments(
    params, traj: Trajectory, step_size, control_apply, max_score_norm=DEFAULT_MAX_SCORE_NORM
):
    """Δ_k (K, N) recomputed from a stored trajectory for control parameters ``params``.

    The states are fixed (stop-gradient), so Δ_k is a function of θ through the means of
    F_k and B_k only: the gradient of a loss of these costs no target evaluation.
    """
    num_steps = traj.x_prev.shape[0]
    ts = jnp.arange(1, num_steps + 1, dtype=traj.x_prev.dtype) / num_steps
    eps_steps = step_sizes_per_step(step_size, num_steps, traj.x_prev.dtype)
    traj = jax.tree.map(jax.lax.stop_gradient, traj)

    def one(x_prev, s_prev, x_new, s_new, fixed, t, eps):
        u_f = control_apply(params, x_prev, t, s_prev)
        u_b = control_apply(params, x_new, t, s_new)
        mean_f, eps_f = _transition(x_prev, s_prev, u_f, eps, max_score_norm)
        mean_b, eps_b = _transition(x_new, s_new, -u_b, eps, max_score_norm)
        return fixed + _gauss_logpdf(x_prev - mean_b, eps_b) - _gauss_logpdf(x_new - mean_f, eps_f)

    return jax.vmap(one)(
        traj.x_prev, traj.score_prev, traj.x_new, traj.score_new, traj.fixed, ts, eps_steps
    )


class Particles(NamedTuple):
    """The population during a sweep: positions (N, d), log γ and ∇log γ there, log q0 and
    ∇log q0 there (the path's two ends; π_β mixes them)."""

    x: jax.Array
    lg: jax.Array
    g: jax.Array
    lq: jax.Array
    gq: jax.Array


def _evaluate(x, flat_ld, reference: Reference) -> Particles:
    """Particles at x (N, d): target and reference values and gradients (non-finite -> -inf, 0)."""
    lg, g = jax.vmap(lambda y: value_and_grad_finite(flat_ld, y))(x)
    lq, gq = jax.vmap(lambda y: value_and_grad_finite(reference.logdensity, y))(x)
    return Particles(x, lg, g, lq, gq)


def _annealed(beta, p: Particles):
    """(log π̃_β, ∇log π_β) of the particles."""
    return annealed_logdensity(beta, p.lg, p.lq), annealed_score(beta, p.g, p.gq)


def _mala_move(key, p: Particles, beta, flat_ld, reference, step_size) -> Particles:
    """One π_β-invariant MALA move of every particle (proposal: the Langevin kernel, no control)."""
    k_prop, k_acc = jax.random.split(key)
    lp_x, s = _annealed(beta, p)
    zero = jnp.zeros_like(p.x)
    mean_x, eps_x = _transition(p.x, s, zero, step_size, jnp.inf)
    noise = jax.random.normal(k_prop, p.x.shape, p.x.dtype)
    q = _evaluate(mean_x + jnp.sqrt(2 * eps_x)[:, None] * noise, flat_ld, reference)
    lp_y, s_y = _annealed(beta, q)
    mean_y, eps_y = _transition(q.x, s_y, zero, step_size, jnp.inf)
    log_acc = lp_y - lp_x + _gauss_logpdf(p.x - mean_y, eps_y) - _gauss_logpdf(q.x - mean_x, eps_x)
    log_acc = jnp.where(jnp.isfinite(log_acc), log_acc, -jnp.inf)
    accept = jnp.log(jax.random.uniform(k_acc, p.lg.shape, p.x.dtype)) < log_acc
    pick = lambda a, b: jnp.where(accept.reshape(accept.shape + (1,) * (a.ndim - 1)), a, b)
    return jax.tree.map(pick, q, p)


def sweep(
    rng_key,
    flat_logdensity: Callable,
    num_particles: int,
    dim: int,
    betas,
    step_size,
    *,
    num_blocks: int = DEFAULT_NUM_BLOCKS,
    ess_threshold: float = DEFAULT_ESS_THRESHOLD,
    num_mala_steps: int = 0,
    control_apply: Callable | None = None,
    control_params=None,
    max_score_norm: float = DEFAULT_MAX_SCORE_NORM,
    record: bool = False,
    dtype=None,
    reference: Reference = STANDARD_NORMAL,
):
    """One CMCD sweep from q0 = ``reference`` (default N(0, I)) to γ = exp(flat_logdensity) with
    N particles.

    Returns (x, log γ(x), ∇log γ(x), info-dict, trajectory or None); x is the final,
    resampled population (N, d). ``betas`` has length K + 1 (β_0 = 0, β_K = 1).
    info-dict keys: log_z, ess, log_weights, num_resampling, diverging, num_grad_evals
    (a counted reference's evaluations included).
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    betas = jnp.asarray(betas, dtype)
    num_steps = betas.shape[0] - 1
    block, is_end = _block_of_steps(num_steps, num_blocks)
    control = _zero_control if control_apply is None else control_apply
    eps_steps = step_sizes_per_step(step_size, num_steps, dtype)
    n = num_particles
    log_n = jnp.log(jnp.asarray(n, dtype))
    evaluate = lambda x: _evaluate(x, flat_logdensity, reference)

    k0, k_steps, k_final, _ = jax.random.split(rng_key, 4)
    p0 = evaluate(reference.sample(k0, n, dim, dtype))
    alive0 = jnp.isfinite(p0.lg) & jnp.isfinite(p0.lq)
    logw0 = jnp.where(alive0, -log_n, -jnp.inf)

    def resample_and_move(key, p, logw, beta, eps):
        k_res, k_mala = jax.random.split(key)
        idx = systematic_resampling(k_res, logw)
        p = jax.tree.map(lambda a: a[idx], p)

        def mala(p, key):
            return _mala_move(key, p, beta, flat_logdensity, reference, eps), None

        if num_mala_steps > 0:
            p, _ = jax.lax.scan(mala, p, jax.random.split(k_mala, num_mala_steps))
        return p, jnp.full_like(logw, -log_n)

    def step(carry, inputs):
        p, logw, log_z, hit, n_res = carry
        key, k, end, eps = inputs
        k_noise, k_res = jax.random.split(key)
        beta_prev, beta = betas[k - 1], betas[k]
        t = k.astype(dtype) / num_steps
        s_prev = annealed_score(beta, p.g, p.gq)
        u_f = control(control_params, p.x, t, s_prev)
        mean_f, eps_f = _transition(p.x, s_prev, u_f, eps, max_score_norm)
        noise = jax.random.normal(k_noise, p.x.shape, dtype)
        new = evaluate(mean_f + jnp.sqrt(2 * eps_f)[:, None] * noise)
        lp_new, s_new = _annealed(beta, new)
        u_b = control(control_params, new.x, t, s_new)
        mean_b, eps_b = _transition(new.x, s_new, -u_b, eps, max_score_norm)
        log_f = _gauss_logpdf(new.x - mean_f, eps_f)
        log_b = _gauss_logpdf(p.x - mean_b, eps_b)
        fixed = lp_new - annealed_logdensity(beta_prev, p.lg, p.lq)
        inc = fixed + log_b - log_f
        ok = jnp.isfinite(inc) & jnp.isfinite(new.lg) & jnp.all(jnp.isfinite(new.x), -1)
        logw_new = jnp.where(ok & jnp.isfinite(logw), logw + inc, -jnp.inf)
        hit = hit | ~ok
        new = new._replace(x=jnp.where(ok[:, None], new.x, p.x))  # dead: finite, weight 0
        fixed = jnp.where(ok, fixed, 0.0)

        def boundary(args):
            p, logw, log_z, n_res = args
            lse = jax.nn.logsumexp(logw)
            fine = jnp.isfinite(lse)
            log_z = log_z + lse
            logw = jnp.where(fine, logw - lse, -log_n)
            last = k == num_steps
            do = fine & (kish_ess(logw) < ess_threshold * n) & ~last
            p, logw = jax.lax.cond(
                do,
                lambda a: resample_and_move(k_res, *a, beta, eps),
                lambda a: a,
                (p, logw),
            )
            return p, logw, log_z, n_res + do.astype(jnp.int32)

        p_b, logw_b, log_z, n_res = jax.lax.cond(
            end, boundary, lambda a: a, (new, logw_new, log_z, n_res)
        )
        out = None
        if record:
            out = Trajectory(p.x, s_prev, new.x, s_new, fixed, ok & jnp.isfinite(logw), block[0])
        return (p_b, logw_b, log_z, hit, n_res), out

    ks = jnp.arange(1, num_steps + 1)
    inputs = (jax.random.split(k_steps, num_steps), ks, jnp.asarray(is_end), eps_steps)
    carry0 = (p0, logw0, jnp.zeros((), dtype), ~alive0, jnp.zeros((), jnp.int32))
    (p, logw, log_z, hit, n_res), traj = jax.lax.scan(step, carry0, inputs)
    if record:
        traj = traj._replace(block=jnp.asarray(block))

    # logw is normalised at the last block end; log(N W_i Ẑ) are the unnormalised weights.
    ess = kish_ess(logw)
    log_weights = logw + log_z + log_n
    all_dead = ~jnp.isfinite(log_z)
    p, _ = resample_and_move(k_final, p, logw, betas[-1], eps_steps[-1])
    num_grad = ((num_steps + 1) + num_mala_steps * (n_res + 1)) * (2 if reference.counted else 1)
    info = dict(
        log_z=jnp.full((n,), log_z, dtype),
        ess=jnp.full((n,), ess, dtype),
        log_weights=log_weights,
        num_resampling=jnp.full((n,), n_res, jnp.int32),
        diverging=hit | all_dead,
        num_grad_evals=num_grad.astype(jnp.int32),
    )
    return p.x, p.lg, p.g, info, traj if record else None


# -- BlackJAX-style API --------------------------------------------------------------------------


def validate_params(
    step_size=None,
    num_steps=DEFAULT_NUM_STEPS,
    schedule="linear",
    num_blocks=DEFAULT_NUM_BLOCKS,
    ess_threshold=DEFAULT_ESS_THRESHOLD,
    num_mala_steps=0,
    max_score_norm=DEFAULT_MAX_SCORE_NORM,
):
    """Raise ValueError, naming the parameter, for an invalid hyper-parameter."""
    check_positive_int("num_steps", num_steps)
    if step_size is not None and not isinstance(step_size, jax.core.Tracer):
        if np.ndim(step_size) == 0:
            check_positive("step_size", step_size)
        else:
            e = np.asarray(step_size, np.float64)
            if e.shape != (num_steps,) or not np.all(np.isfinite(e) & (e > 0)):
                raise ValueError(
                    f"step_size must be a positive number or an array of num_steps = "
                    f"{num_steps} finite positive values, got shape {e.shape}"
                )
    if isinstance(schedule, str):
        check_choice("schedule", schedule, SCHEDULES)
    else:
        b = check_schedule(schedule)
        if b.shape[0] != num_steps + 1:
            raise ValueError(
                f"schedule must have num_steps + 1 = {num_steps + 1} entries, got {b.shape[0]}"
            )
    check_positive_int("num_blocks", num_blocks)
    if num_blocks > num_steps:
        raise ValueError(f"num_blocks must be <= num_steps, got {num_blocks} > {num_steps}")
    if not (0.0 <= float(ess_threshold) <= 1.0):
        raise ValueError(f"ess_threshold must lie in [0, 1], got {ess_threshold!r}")
    check_nonnegative_int("num_mala_steps", num_mala_steps)
    check_positive("max_score_norm", max_score_norm)


def _betas(schedule, num_steps):
    if isinstance(schedule, str):
        return make_schedule(schedule, num_steps)
    return check_schedule(schedule)


def init(position, logdensity_fn: Callable, control_params=None, opt_state=None) -> CMCDState:
    """A population state at ``position`` (a pytree whose leaves have a leading axis N)."""
    one = jax.tree.map(lambda a: a[0], position)
    _, unravel = ravel_pytree(one)
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])(position)
    lg, g = jax.vmap(lambda y: value_and_grad_finite(lambda z: logdensity_fn(unravel(z)), y))(flat)
    stats = _empty_stats(lg.shape[0], lg.dtype)
    return CMCDState(position, lg, jax.vmap(unravel)(g), *stats, control_params, opt_state)


def build_kernel(
    num_steps: int = DEFAULT_NUM_STEPS,
    schedule="linear",
    num_blocks: int = DEFAULT_NUM_BLOCKS,
    ess_threshold: float = DEFAULT_ESS_THRESHOLD,
    num_mala_steps: int = 0,
    control_apply: Callable | None = None,
    max_score_norm: float = DEFAULT_MAX_SCORE_NORM,
) -> Callable:
    """Return kernel(rng_key, state, logdensity_fn, step_size, reference_mean=0.,
    reference_scale=1.) -> (state, info): one sweep from q0 = N(m, s² I) to the target.

    The sweep runs in y = (x - m) / s, where q0 is N(0, I) and the target's log density is
    log γ(m + s y) + Σ log s, so the estimate log Ẑ is that of γ in x.
    """
    validate_params(
        None, num_steps, schedule, num_blocks, ess_threshold, num_mala_steps, max_score_norm
    )
    betas = _betas(schedule, num_steps)

    def kernel(
        rng_key,
        state,
        logdensity_fn,
        step_size,
        reference_mean=0.0,
        reference_scale=1.0,
        reference: Reference | None = None,
    ):
        one = jax.tree.map(lambda a: a[0], state.position)
        flat_one, unravel = ravel_pytree(one)
        n, d = state.logdensity.shape[0], flat_one.shape[0]
        m = jnp.broadcast_to(jnp.asarray(reference_mean, flat_one.dtype), (d,))
        s = jnp.broadcast_to(jnp.asarray(reference_scale, flat_one.dtype), (d,))
        log_det = jnp.sum(jnp.log(s))
        ld_y = lambda y: logdensity_fn(unravel(m + s * y)) + log_det
        ref_y = STANDARD_NORMAL if reference is None else _rescaled(reference, m, s, log_det)
        y, lg, g, info, _ = sweep(
            rng_key,
            ld_y,
            n,
            d,
            betas,
            step_size,
            num_blocks=num_blocks,
            ess_threshold=ess_threshold,
            num_mala_steps=num_mala_steps,
            control_apply=control_apply,
            control_params=None
            if state.control_params is None
            else state.control_params.reshape(-1),
            max_score_norm=max_score_norm,
            dtype=flat_one.dtype,
            reference=ref_y,
        )
        x = m + s * y
        new = CMCDState(
            jax.vmap(unravel)(x),
            lg - log_det,
            jax.vmap(unravel)(g / s),
            *_stats(info),
            state.control_params,
            state.opt_state,
        )
        return new, _info(info)

    return kernel


def _rescaled(reference: Reference, m, s, log_det) -> Reference:
    """A reference on flat x as one on y = (x - m) / s (its density carries log |det s|)."""

    def sample(key, num, dim, dtype):
        return ((reference.sample(key, num, dim, dtype) - m) / s).astype(dtype)

    logdensity = lambda y: reference.logdensity(m + s * y) + log_det
    return Reference(sample, logdensity, reference.counted)


def _stats(d, loss=None):
    nan = jnp.full_like(d["log_z"], jnp.nan)
    return d["log_z"], d["ess"], d["log_weights"], d["diverging"], nan if loss is None else loss


def _info(d, loss=None):
    n = d["log_z"].shape[0]
    return CMCDInfo(
        log_z=d["log_z"],
        ess=d["ess"],
        log_weights=d["log_weights"],
        num_resampling=d["num_resampling"],
        diverging=d["diverging"],
        loss=jnp.full((n,), jnp.nan, d["log_z"].dtype) if loss is None else loss,
        num_grad_evals=d["num_grad_evals"],
        num_density_evals=jnp.asarray(0, jnp.int32),
    )


def as_top_level_api(
    logdensity_fn: Callable,
    step_size,
    num_steps: int = DEFAULT_NUM_STEPS,
    schedule="linear",
    num_blocks: int = DEFAULT_NUM_BLOCKS,
    ess_threshold: float = DEFAULT_ESS_THRESHOLD,
    num_mala_steps: int = 0,
    reference_mean=0.0,
    reference_scale=1.0,
    control_apply: Callable | None = None,
    max_score_norm: float = DEFAULT_MAX_SCORE_NORM,
    reference: Reference | None = None,
) -> SamplingAlgorithm:
    """BlackJAX-style CMCD: ``state = alg.init(positions)`` (leading axis N = the particles),
    ``state, info = alg.step(rng_key, state)`` runs one sweep; ``info.log_z`` is its log Ẑ.

    step_size: ε of the Langevin kernels in units of the reference (no default; 0.05–0.3 for a
    reference matched to the target's scale), or an array of K per-step values ε_1..ε_K (F_k,
    B_k and the MALA moves after a resampling at step k use ε_k): large while π_k is close to
    the reference, small near the target where the target has narrow regions (tests/test_cmcd.py
    uses this on Neal's funnel). num_steps: K (64). schedule: "linear" (default),
    "geometric", "cosine", "power" or an array of K + 1 values from 0 to 1. num_blocks: J (4).
    ess_threshold: resample a block end when ESS < threshold · N (0.3; 0 never resamples, so
    log_weights are the full-path log w). num_mala_steps: MALA moves after each resampling (0).
    reference_mean, reference_scale: q0 = N(m, s² I) (scalars or arrays); with ``reference``
    (a :class:`~scoresample.diffusion.annealing.Reference` on flat positions, e.g. a prior's
    sampler and normalised log density, as tempered SMC is given) q0 is that instead and
    (m, s) only set the coordinates the Langevin steps are taken in. control_apply:
    u(params, y, t, s_k) -> drift in reference units (None: zero control); the state's
    control_params feeds it (see scoresample.adapt.control).
    """
    validate_params(
        step_size, num_steps, schedule, num_blocks, ess_threshold, num_mala_steps, max_score_norm
    )
    kernel = build_kernel(
        num_steps,
        schedule,
        num_blocks,
        ess_threshold,
        num_mala_steps,
        control_apply,
        max_score_norm,
    )

    def init_fn(position, rng_key=None, control_params=None):
        del rng_key
        return init(position, logdensity_fn, control_params)

    def step_fn(rng_key, state):
        return kernel(
            rng_key, state, logdensity_fn, step_size, reference_mean, reference_scale, reference
        )

    return SamplingAlgorithm(init_fn, step_fn)


cmcd = SamplingAPI(as_top_level_api, init, build_kernel)


# -- the NumPyro front -------------------------------------------------------------------------


class Control(NamedTuple):
    """A learnable control for the NumPyro front (built by ``scoresample.adapt.control``).

    init(rng_key, dim) -> (flat params (P,), optimiser state);
    apply(params (P,), x (N, d), t, score (N, d)) -> u (N, d);
    update(params, opt_state, trajectory, betas, step_size) -> (params, opt_state, loss).
    """

    init: Callable
    apply: Callable
    update: Callable


def spec(
    num_steps: int = DEFAULT_NUM_STEPS,
    schedule="linear",
    num_blocks: int = DEFAULT_NUM_BLOCKS,
    ess_threshold: float = DEFAULT_ESS_THRESHOLD,
    num_mala_steps: int = 0,
    control: Control | None = None,
    max_score_norm: float = DEFAULT_MAX_SCORE_NORM,
) -> SamplerSpec:
    """CMCD for the NumPyro front: a population spec (the chains are the particles) in whitened
    coordinates, where the reference is N(0, I) and log Ẑ is the model's evidence (the whitened
    log density carries log |det L|).

    One MCMC iteration = one sweep. With a ``control``, warmup iterations also take one
    optimiser step of the control on the sweep's trajectory (``warmup_step``); sampling uses
    the frozen control. The step-size probe is the MALA acceptance of one Langevin step of size
    ε at the target from the current population (computed, not applied; one gradient).
    """
    validate_params(
        None, num_steps, schedule, num_blocks, ess_threshold, num_mala_steps, max_score_norm
    )
    betas = _betas(schedule, num_steps)
    apply = None if control is None else control.apply

    def init_fn(rng_key, position, logdensity_fn):
        lg, g = jax.vmap(lambda y: value_and_grad_finite(logdensity_fn, y))(position)
        params = opt_state = None
        if control is not None:
            params, opt_state = control.init(rng_key, position.shape[-1])
            params = params[None, :]
        stats = _empty_stats(lg.shape[0], lg.dtype)
        return CMCDState(position, lg, g, *stats, params, opt_state)

    def run(rng_key, state, logdensity_fn, step_size, record, reference):
        n, d = state.position.shape
        params = None if state.control_params is None else state.control_params.reshape(-1)
        x, lg, g, info, traj = sweep(
            rng_key,
            logdensity_fn,
            n,
            d,
            betas,
            step_size,
            num_blocks=num_blocks,
            ess_threshold=ess_threshold,
            num_mala_steps=num_mala_steps,
            control_apply=apply,
            control_params=params,
            max_score_norm=max_score_norm,
            record=record,
            dtype=state.position.dtype,
            reference=STANDARD_NORMAL if reference is None else reference,
        )
        new = CMCDState(x, lg, g, *_stats(info), state.control_params, state.opt_state)
        return new, info, traj

    def step_fn(rng_key, state, logdensity_fn, step_size, reference=None):
        new, info, _ = run(rng_key, state, logdensity_fn, step_size, False, reference)
        return new, _front_info(info)

    def warmup_step_fn(rng_key, state, logdensity_fn, step_size, reference=None):
        new, info, traj = run(rng_key, state, logdensity_fn, step_size, True, reference)
        params, opt_state, loss = control.update(
            state.control_params.reshape(-1), state.opt_state, traj, betas, step_size
        )
        n = state.position.shape[0]
        new = new._replace(
            control_params=params[None, :],
            opt_state=opt_state,
            loss=jnp.full((n,), loss, state.position.dtype),
        )
        return new, _front_info(info)

    def probe(rng_key, state, logdensity_fn, step_size):
        x, lg, g = state.position, state.logdensity, state.logdensity_grad
        k_prop, _ = jax.random.split(rng_key)
        y = x + step_size * g + jnp.sqrt(2 * step_size) * jax.random.normal(k_prop, x.shape)
        lg_y, g_y = jax.vmap(lambda z: value_and_grad_finite(logdensity_fn, z))(y)
        log_q_fwd = -jnp.sum((y - x - step_size * g) ** 2, -1) / (4 * step_size)
        log_q_bwd = -jnp.sum((x - y - step_size * g_y) ** 2, -1) / (4 * step_size)
        log_acc = lg_y - lg + log_q_bwd - log_q_fwd
        acc = jnp.where(jnp.isfinite(log_acc), jnp.minimum(1.0, jnp.exp(log_acc)), 0.0)
        return acc, 1

    return SamplerSpec(
        init_fn,
        step_fn,
        probe,
        is_population=True,
        uses_gradients=True,
        warmup_step=None if control is None else warmup_step_fn,
        takes_reference=True,
    )


def _front_info(d):
    """Info for the NumPyro front: a particle lost in the sweep is not a diverging *draw* (the
    resampling already replaced it), so only a sweep that lost every particle reports
    ``diverging``; the per-slot losses travel on the state (``CMCDState.diverged``)."""
    info = _info(d)
    all_lost = jnp.all(d["diverging"]) | ~jnp.isfinite(d["log_z"][0])
    return info._replace(diverging=jnp.full_like(d["diverging"], all_lost))
