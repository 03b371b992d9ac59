"""NumPyro kernel for controlled Monte Carlo diffusions (``scoresample.samplers.cmcd``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from scoresample.adapt.control import mlp_control
from scoresample.adapt.reference import improper_sites, model_prior, whitened_prior
from scoresample.infer.base import ScoreSampleKernel, state_item
from scoresample.samplers import cmcd
from scoresample.samplers.base import check_choice

CONTROLS = ("zero", "learned")
ANNEAL_FROM = ("gaussian", "prior")


class CMCDKernelState(NamedTuple):
    """The adapter's state plus each sweep's evidence and weight diagnostics, so that
    ``extra_fields=("log_z", "ess", "log_weights", "lost", "loss")`` works; each is (N,) per
    particle slot. log_z and ess are the sweep's (the same in every slot; −inf and 0 for a sweep
    that kept no particle); lost: the slot's trajectory was lost within the sweep (see
    :class:`CMCD`). The other fields as in ``ScoreSampleState``."""

    i: jax.Array
    z: Any
    potential_energy: jax.Array
    diverging: jax.Array
    num_grad_evals: jax.Array
    num_density_evals: jax.Array
    sampler_state: Any
    adapt_state: Any
    rng_key: jax.Array
    log_z: jax.Array
    ess: jax.Array
    log_weights: jax.Array
    lost: jax.Array
    loss: jax.Array

    def __getitem__(self, key):
        return state_item(self, key)


class SweepStats(NamedTuple):
    """A sweep's diagnostics per slot (N,): log Ẑ, final Kish ESS, the particles' log weights."""

    log_z: jax.Array
    ess: jax.Array
    log_weights: jax.Array


def _sweep_stats(ss, kept) -> SweepStats:
    """The sweep's log Ẑ, ESS and log weights from the sampler state ``ss``, whose slots where
    ``kept`` is False hold the previous sweep's values (the front kept that slot's old state).
    A sweep's log Ẑ and ESS are the same in every slot it produced, so one kept slot gives them;
    with none kept the sweep delivered nothing: log Ẑ −inf (Ẑ = 0, which is how
    ``combine_log_z`` counts a lost sweep), ESS 0, log weights −inf."""
    first = jnp.argmax(kept)
    any_kept = jnp.any(kept)
    sweep = lambda a, empty: jnp.where(any_kept, jnp.full_like(a, a[first]), empty)
    log_weights = jnp.where(any_kept, ss.log_weights, -jnp.inf)
    return SweepStats(sweep(ss.log_z, -jnp.inf), sweep(ss.ess, 0.0), log_weights)


def _extend(state, stats: SweepStats, lost) -> CMCDKernelState:
    base = tuple(state)[:9]
    return CMCDKernelState(*base, *stats, lost, state.sampler_state.loss)


class CMCD(ScoreSampleKernel):
    """Controlled Monte Carlo diffusions, a NumPyro *ensemble* kernel: the chains are the particles.

    Vargas, Padhy, Blessing & Nüsken (2024), "Transport meets variational inference: controlled
    Monte Carlo diffusions", ICLR; blocks with resampling as in SCLD (Chen et al. 2025, ICLR).
    Use ``MCMC(CMCD(model), num_chains=N, chain_method="vectorized")`` with N ≥ 2 particles
    (hundreds or more: the evidence estimate and the weights improve with N).

    One MCMC iteration = one sweep: N fresh particles from the reference N(0, I) in whitened
    coordinates (the warmup's preconditioner; ``inflation`` widens it) annealed along the
    geometric path to the target with Langevin kernels and exact weights, resampled (systematic)
    at block ends when ESS < ``ess_threshold`` · N and at the end. The draws are the resampled
    particles, so consecutive draws are independent.

    Extra fields, per particle slot (N,) and sweep: ``log_z`` (the sweep's log Ẑ of the model's
    evidence; combine sweeps with ``scoresample.samplers.cmcd.combine_log_z``), ``ess`` (the
    Kish ESS of the sweep's final weights, in particles), ``log_weights``, ``lost``, ``loss``
    (control training loss in warmup). ``diverging`` means what it means for NUTS: the draw in
    that slot is suspect; here, the slot kept its previous sweep's draw because this sweep
    produced nothing usable there (every particle was lost, or the front's finiteness or energy
    test failed). ``lost`` marks the slots whose trajectory met a non-finite density or
    gradient within the sweep: its weight was set to zero and the resampling replaced it, so no
    draw comes from it. Losses are a property of the population, not of a draw: the weights
    only cover the paths that avoided those regions (a target defined on part of the space, or
    steps that overflow), which biases the draws and log Ẑ when many are lost.

    Diagnostics: the particles of one sweep are exchangeable and include resampled copies, and
    each sweep starts afresh, so a particle slot is not a Markov chain. ``mcmc.print_summary()``
    and ``az.summary(az.from_numpyro(mcmc))`` take slots as chains, so their n_eff counts copies
    as independent draws; with fewer than 4 sweeps NumPyro's split R-hat fails
    (``AssertionError``, as for NumPyro's own ensemble kernels AIES and ESS) and ArviZ returns
    NaN. The kernel cannot change this: ``MCMC`` stacks the draws as (chains, iterations) and
    calls the diagnostics itself. ``scoresample.checks.print_population_summary(mcmc)`` groups
    the draws by sweep instead and reports per sweep log Ẑ, ESS, unique draws, losses and
    divergences (collect ``extra_fields=("log_z", "ess", "lost")``); ``scoresample.check(mcmc)``
    tests the run.

    Warmup: the adapter's preconditioner (by default Pathfinder from prior draws, see
    :class:`~scoresample.infer.base.ScoreSampleKernel`; Welford windows pooled over the
    particles) and dual averaging of ε towards ``target_accept`` of a one-step MALA test at the
    target (computed, not applied). With ``control="learned"`` each warmup sweep also trains the
    control (``scoresample.adapt.control.mlp_control``, log-variance loss, Adam); sampling uses
    the frozen control. When a preconditioner window ends the control trained so far is kept.

    Args:
        num_steps: K annealing steps (default 64), one gradient each per particle.
        schedule: β schedule, "linear" (default), "geometric", "cosine", "power" or an array
            of K + 1 values.
        num_blocks: resampling points (default 4). ess_threshold: 0.3 (SCLD).
        num_mala_steps: MALA moves after each resampling (default 0).
        control: "zero" (training-free, default) or "learned". control_kwargs: passed to
            ``mlp_control`` (hidden, learning_rate, num_updates, …).
        max_score_norm: per-particle clip of the drift norm (default 1e3, a guard against
            exploding target gradients; the weights stay exact).
        anneal_from: the path's start q0. "gaussian" (default; the paper's): the warmup's
            Gaussian, N(0, I) in whitened coordinates. "prior": the model's prior (every latent
            site proper, else ValueError at init), so π_β ∝ prior · likelihood^β as in tempered
            SMC; the prior is evaluated beside the target, so a sweep costs 2(K + 1) gradients.
            Not the default: measured (256 particles, 50 + 50 sweeps; BENCHMARKS.md) it matched
            the Gaussian start on the 4-mode mixture under a N(0, 20²) prior (weight error
            0.011 vs 0.012) and failed centred eight schools (E[tau] 73.5, sd 2315: the
            half-Cauchy tail's particles are not pulled back in K steps; Gaussian start 3.66).
        target_accept: default 0.9 (a choice: the one-step MALA acceptance measures the
            forward/backward mismatch of one Langevin step, which enters log w at every step;
            not tuned by measurement).
        All common parameters of :class:`~scoresample.infer.base.ScoreSampleKernel`; the
        default ``step_size`` (initial ε) is 0.1.
    """

    default_target_accept = 0.9

    def __init__(
        self,
        model=None,
        potential_fn=None,
        *,
        num_steps=cmcd.DEFAULT_NUM_STEPS,
        schedule="linear",
        num_blocks=cmcd.DEFAULT_NUM_BLOCKS,
        ess_threshold=cmcd.DEFAULT_ESS_THRESHOLD,
        num_mala_steps=0,
        control="zero",
        control_kwargs=None,
        max_score_norm=cmcd.DEFAULT_MAX_SCORE_NORM,
        anneal_from="gaussian",
        step_size=None,
        **kwargs,
    ):
        cmcd.validate_params(
            None, num_steps, schedule, num_blocks, ess_threshold, num_mala_steps, max_score_norm
        )
        check_choice("control", control, CONTROLS)
        check_choice("anneal_from", anneal_from, ANNEAL_FROM)
        self._anneal_from = anneal_from
        self._cmcd_args = (num_steps, schedule, num_blocks, ess_threshold, num_mala_steps)
        self._max_score_norm = float(max_score_norm)
        self._control = (
            mlp_control(max_score_norm=max_score_norm, **(control_kwargs or {}))
            if control == "learned"
            else None
        )
        super().__init__(
            model, potential_fn, step_size=0.1 if step_size is None else step_size, **kwargs
        )

    def init(self, rng_key, num_warmup, init_params=None, model_args=(), model_kwargs=None):
        if self._anneal_from == "prior":
            improper = (
                ["<potential_fn>"]
                if self._model is None
                else improper_sites(self._model, model_args, model_kwargs)
            )
            if improper:
                raise ValueError(
                    "anneal_from='prior' needs a model whose latent sites all have proper "
                    f"priors; improper: {improper}. Use anneal_from='gaussian'."
                )
        return super().init(rng_key, num_warmup, init_params, model_args, model_kwargs)

    def _path_reference(self, model_args, model_kwargs, precond):
        if self._anneal_from == "gaussian":
            return None
        dim = precond.mean.shape[-1]
        prior = model_prior(self._model, model_args, model_kwargs, self._unravel_fn, dim)
        return whitened_prior(prior, precond)

    def _build_spec(self):
        return cmcd.spec(*self._cmcd_args, self._control, self._max_score_norm)

    def _make_state(self, *args, **kwargs):
        state = super()._make_state(*args, **kwargs)
        ss = state.sampler_state
        return _extend(state, SweepStats(ss.log_z, ss.ess, ss.log_weights), ss.diverged)

    def _sample_state(self, state, model_args, model_kwargs):
        new = super()._sample_state(state, model_args, model_kwargs)
        ss = new.sampler_state
        if self._control is not None:
            # A preconditioner change re-initialises the sampler state (fresh control): keep
            # the control trained up to the previous iteration instead.
            old_p, new_p = state.adapt_state.precond, new.adapt_state.precond
            changed = jnp.any(old_p.mean != new_p.mean) | jnp.any(old_p.scale != new_p.scale)
            old = state.sampler_state
            keep = lambda a, b: jax.tree.map(lambda u, v: jnp.where(changed, u, v), a, b)
            ss = ss._replace(
                control_params=keep(old.control_params, ss.control_params),
                opt_state=keep(old.opt_state, ss.opt_state),
            )
        new = new._replace(sampler_state=ss)
        # ``diverging`` is the front's: the slot kept its previous draw (the whole sweep was lost,
        # or its particle there failed the front's finiteness or energy test). A trajectory lost
        # within the sweep had weight zero and was replaced by resampling, so the slot's draw is
        # fine: that goes to ``lost``. In a kept slot ss.diverged is this sweep's loss flag; a
        # slot not kept holds the previous sweep's state and lost this sweep's particle anyway.
        kept = ~new.diverging
        return _extend(new, _sweep_stats(ss, kept), new.diverging | ss.diverged)

    def get_diagnostics_str(self, state):
        if state.adapt_state is None:
            return super().get_diagnostics_str(state)
        n = state.lost.shape[0]
        return (
            f"step size {float(state.adapt_state.step_size):.2e}, "
            f"log Z {float(state.log_z[0]):.2f}, ESS {float(state.ess[0]):.0f}/{n}, "
            f"lost {float(jnp.mean(state.lost)):.0%}, "
            f"diverging {float(jnp.mean(state.diverging)):.0%}"
        )
