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
    ``extra_fields=("log_z", "ess", "log_weights", "loss")`` works; each is (N,) per particle
    (log_z the same for every particle of a sweep). Fields as in ``ScoreSampleState``."""

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
    loss: jax.Array

    def __getitem__(self, key):
        return state_item(self, key)


def _extend(state) -> CMCDKernelState:
    ss = state.sampler_state
    base = tuple(state)[:9]
    return CMCDKernelState(*base, ss.log_z, ss.ess, ss.log_weights, ss.loss)


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
    particles, so consecutive draws are independent. Extra fields: ``log_z`` (the sweep's log Ẑ
    of the model's evidence; combine sweeps with ``scoresample.samplers.cmcd.combine_log_z``),
    ``ess``, ``log_weights``, ``loss`` (control training loss in warmup). ``diverging`` marks
    the particle slots whose trajectory met a non-finite density (their weight was zero, the
    resampling replaced them; the draw itself is fine).

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
        return _extend(super()._make_state(*args, **kwargs))

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
        # A particle lost within the sweep is reported on its slot (ALGORITHMS.md: failure is
        # visible); the draw in that slot is a resampled, finite particle.
        new = new._replace(sampler_state=ss, diverging=new.diverging | ss.diverged)
        return _extend(new)
