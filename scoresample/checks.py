"""Post-run checks: a run that is probably wrong says so (DESIGN.md, "failure is visible").

NumPyro's ``MCMC`` has no post-run hook, so call :func:`check` after ``mcmc.run(...)``::

    mcmc.run(key, *args, extra_fields=("log_z", "ess"))  # the CMCD fields, where they apply
    report = scoresample.check(mcmc)  # warns SuspectRunWarning when something is off
    report.ok, report.problems, report.skipped

Each check runs only where it applies and reports its measured value (``nan`` when skipped):

- ``rhat_max``: largest rank-normalised split R-hat over coordinates, against 1.01 loosened by
  R-hat's own noise for short chains (``rhat_limit``). Per-chain kernels: over the chains.
  Population kernels (``sampler.is_ensemble_kernel``: the chains are particles): R-hat over the
  particles would be meaningless (the particles of one sweep are exchangeable and each sweep
  starts afresh, so a particle slot is not a Markov chain); instead every sweep (one MCMC
  iteration, independent of the others given the frozen reference) is taken as a "chain" of its
  particles, so the check says whether the sweeps' populations agree (with a looser noise
  allowance, ``RHAT_NOISE_SWEEPS``: resampling leaves copies).
- ``ess_per_draw``: smallest bulk ESS over coordinates per draw; per-chain kernels only.
- ``divergence_rate``: share of draws marked ``diverging`` (skipped when not collected).
- ``log_z_sd``: sd over sweeps of the evidence estimate log Ẑ (the ``log_z`` extra field).
- ``population_ess``: median over sweeps of the final Kish ESS / N (the ``ess`` field).
- ``scale_ratio``: the sd of the draws per coordinate, in the flat unconstrained space where the
  warmup's preconditioner lives, over that preconditioner's marginal scale; the ratio farthest
  from 1 (in log) is reported. Only for kernels whose state holds ``adapt_state.precond``.

Population kernels also have :func:`print_population_summary` (:func:`population_summary`), the
counterpart of ``mcmc.print_summary()``, which takes particle slots as chains (and fails with
fewer than 4 sweeps): per sweep log Ẑ, weight ESS, unique draws, lost trajectories and
divergences, and NumPyro's table with each sweep as a chain of its particles.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, NamedTuple

import arviz as az
import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.diagnostics import summary as numpyro_summary
from numpyro.infer.util import unconstrain_fn

# Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021, Bayesian Analysis), "Rank-normalization,
# folding, and localization: an improved R-hat": use the sample only when split R-hat < 1.01.
MAX_RHAT = 1.01
# R-hat's own noise: for independent draws, C chains of n, ArviZ's split R-hat exceeds 1 + k/n in
# 1% of runs with k·sqrt(C − 1) ≈ 5 (10 coordinates) to 7 (100), C = 2 to 16 (measured, 200-300
# runs each); correlated draws with half an effective draw per draw gave 5.2 (4 chains of 100).
# So the limit is 1 + max(0.01, 8 / (n sqrt(C − 1))): 1.09 for 4 chains of 50 draws, 1.01 from
# 462 draws on.
RHAT_NOISE = 8.0
# Population kernels, R-hat over sweeps: resampling leaves copies, so a sweep's particles are fewer
# effective draws; a correct CMCD run (3-D Gaussian, 256 particles, 8 sweeps) reached 1.0133
# where independent draws stay below 1.0118 (k = 8): twice RHAT_NOISE.
RHAT_NOISE_SWEEPS = 2 * RHAT_NOISE
# A choice from measurements (tests/test_checks.py, `scoresample demo --quick`): RandomizedMidpoint
# gave 0.9-1.3 effective draws per draw on a Gaussian, 0.015-0.019 with its chains stuck in the
# funnel's neck (about one per chain), 0.035 stuck in the modes of the demo's mixture; 1/20.
MIN_ESS_PER_DRAW = 0.05
# Stan warns at any divergence of HMC; here a divergence is a rejected step (the chain keeps its
# last state), so a few are harmless: more than 1 in 100 draws is a region the kernel cannot handle.
MAX_DIVERGENCE_RATE = 0.01
# For a log-normal Ẑ, E log Ẑ ≈ log Z − var(log Ẑ)/2: an sd of 1 nat over sweeps means each
# sweep's log Ẑ is biased by about half a nat (the issue asked for "about 1 nat").
MAX_LOG_Z_SD = 1.0
# A third of CMCD's resampling threshold (0.3 N, as SCLD): measured median final ESS/N 0.88 on a
# 3-D Gaussian, 0.37-0.55 on the 10-D funnel annealed from its prior, 0.03-0.07 annealed from
# the Laplace Gaussian in the funnel's neck (log Ẑ 67 nats off).
MIN_POPULATION_ESS = 0.1
# An order of magnitude either way: the preconditioner is fitted to the warmup draws (Welford
# windows), so sampling draws 10x narrower or wider went where the warmup did not look.
SCALE_RATIO_BOUNDS = (0.1, 10.0)


class SuspectRunWarning(UserWarning):
    """A finished MCMC run is probably wrong (see :func:`check` and ``RunCheck.problems``)."""


class Finding(NamedTuple):
    """One check's measured value and, when it fails, a human-readable problem."""

    value: float
    problem: str | None = None


@dataclasses.dataclass(frozen=True)
class RunCheck:
    """The measured value of every check (``nan`` when skipped), the problems found and the
    checks skipped ("name: why"). ``ok`` is True when no problem was found."""

    rhat_max: float = math.nan
    ess_per_draw: float = math.nan
    divergence_rate: float = math.nan
    log_z_sd: float = math.nan
    population_ess: float = math.nan
    scale_ratio: float = math.nan
    problems: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------------------------------------
# The checks, on arrays


def _name(names, i) -> str:
    return names[i] if names is not None else f"coordinate {i}"


def _dataset(draws):
    """ArviZ dataset of draws (chains, draws, d); its "more chains than draws" note is silenced
    (many short chains are how these kernels are meant to be used)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.convert_to_dataset({"x": np.asarray(draws)})


def rhat_limit(num_chains: int, draws_per_chain: int, noise: float = RHAT_NOISE) -> float:
    """MAX_RHAT, loosened for short chains by R-hat's own noise (``RHAT_NOISE``)."""
    return max(MAX_RHAT, 1.0 + noise / (draws_per_chain * math.sqrt(max(num_chains - 1, 1))))


def check_rhat(draws, names=None, max_rhat=None, chains="chains") -> Finding:
    """Largest split R-hat over the coordinates of draws (chains, draws, d), against
    ``max_rhat`` (default ``rhat_limit`` of the draws per chain); ``chains`` names the chains
    in the message."""
    max_rhat = rhat_limit(*np.shape(draws)[:2]) if max_rhat is None else max_rhat
    rhat = np.asarray(az.rhat(_dataset(draws))["x"])
    i = int(np.argmax(np.where(np.isfinite(rhat), rhat, np.inf)))
    value = float(rhat[i])
    if value <= max_rhat:
        return Finding(value)
    where = _name(names, i)
    return Finding(
        value, f"split R-hat {value:.4g} > {max_rhat:.4g} ({where}): the {chains} disagree"
    )


def check_ess(draws, names=None, min_per_draw=MIN_ESS_PER_DRAW) -> Finding:
    """Smallest bulk ESS per draw over the coordinates of draws (chains, draws, d)."""
    ess = np.asarray(az.ess(_dataset(draws), method="bulk", relative=True)["x"])
    i = int(np.argmin(np.where(np.isfinite(ess), ess, -np.inf)))
    value = float(ess[i])
    if value >= min_per_draw:
        return Finding(value)
    return Finding(
        value,
        f"bulk ESS per draw {value:.3g} < {min_per_draw} ({_name(names, i)}): "
        "the chains barely move",
    )


def check_divergences(diverging, max_rate=MAX_DIVERGENCE_RATE) -> Finding:
    """Share of draws (any shape) marked diverging."""
    value = float(np.mean(np.asarray(diverging, bool)))
    if value <= max_rate:
        return Finding(value)
    return Finding(value, f"{value:.1%} of the draws diverged (more than {max_rate:.0%})")


def check_log_z(log_z, max_sd=MAX_LOG_Z_SD) -> Finding:
    """sd over sweeps of log Ẑ (one value per sweep); a non-finite sweep fails."""
    x = np.asarray(log_z, np.float64)
    if not np.all(np.isfinite(x)):
        lost = int(np.sum(~np.isfinite(x)))
        return Finding(math.inf, f"log Ẑ is not finite in {lost} of {x.size} sweeps (all lost)")
    value = float(np.std(x, ddof=1))
    if value <= max_sd:
        return Finding(value)
    return Finding(
        value,
        f"log Ẑ of the {np.size(log_z)} sweeps spreads by sd {value:.3g} nats "
        f"(more than {max_sd:g}): the evidence estimate is unreliable",
    )


def check_population_ess(ess, num_particles, min_fraction=MIN_POPULATION_ESS) -> Finding:
    """Median over sweeps of the final Kish ESS (one value per sweep) over the particles."""
    value = float(np.median(np.asarray(ess, np.float64))) / num_particles
    if value >= min_fraction:
        return Finding(value)
    return Finding(
        value,
        f"population ESS {value:.3g} N < {min_fraction} N in the median sweep: "
        "a few particles carry the weight",
    )


def check_scale(draws, scale, names=None, bounds=SCALE_RATIO_BOUNDS) -> Finding:
    """sd of draws (chains, draws, d) over the reference's marginal scale ((chains, d) or (d,)),
    per chain and coordinate; the ratio farthest from 1 (in log) is the value."""
    ratio = np.std(np.asarray(draws, np.float64), axis=1) / np.asarray(scale, np.float64)
    far = np.abs(np.log(np.where(ratio > 0, ratio, np.finfo(float).tiny)))
    chain, i = np.unravel_index(np.argmax(np.where(np.isnan(far), np.inf, far)), far.shape)
    value = float(ratio[chain, i])
    if bounds[0] <= value <= bounds[1]:
        return Finding(value)
    return Finding(
        value,
        f"the draws' sd is {value:.3g} x the reference's scale "
        f"({_name(names, i)}; outside {list(bounds)}): the draws are not where the "
        "warmup found the posterior",
    )


# ---------------------------------------------------------------------------------------------
# Reading a run


class RunData(NamedTuple):
    """What the checks read from a finished run."""

    draws: np.ndarray  # (chains, draws, d) in the flat unconstrained space
    names: list  # the d coordinates' names, e.g. "x[3]"
    population: bool  # the chains are a population's particles
    fields: dict  # extra fields grouped by chain
    precond: Any  # the warmup's Preconditioner(mean, scale), or None


def coordinate_names(tree) -> list:
    """Names of the coordinates of ``ravel_pytree(tree)``, e.g. ["v", "x[0]", "x[1]"]."""
    names = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        base = ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path) or "x"
        idx = list(np.ndindex(np.shape(leaf)))
        names += [base if i == () else f"{base}[{','.join(map(str, i))}]" for i in idx]
    return names


def flat_draws(mcmc):
    """(draws (chains, draws, d) in the flat unconstrained space of the kernel's state, names):
    the constrained samples of the latent sites mapped back with the model's transforms."""
    latent = getattr(mcmc.last_state, mcmc.sampler.sample_field)
    samples = mcmc.get_samples(group_by_chain=True)
    if isinstance(samples, dict) and isinstance(latent, dict):
        samples = {k: samples[k] for k in latent}
    model = getattr(mcmc.sampler, "model", None)
    if model is not None:
        samples = jax.vmap(jax.vmap(lambda p: unconstrain_fn(model, mcmc._args, mcmc._kwargs, p)))(
            samples
        )
    draws = jax.vmap(jax.vmap(lambda p: ravel_pytree(p)[0]))(samples)
    return np.asarray(draws), coordinate_names(jax.tree.map(lambda a: a[0, 0], samples))


def read_run(mcmc) -> RunData:
    """The draws, extra fields and preconditioner of a finished ``numpyro.infer.MCMC`` run."""
    if mcmc.last_state is None:
        raise ValueError("check(mcmc) inspects a finished run: call mcmc.run(...) first.")
    draws, names = flat_draws(mcmc)
    fields = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    adapt = getattr(mcmc.last_state, "adapt_state", None)
    population = bool(getattr(mcmc.sampler, "is_ensemble_kernel", False))
    return RunData(draws, names, population, fields, getattr(adapt, "precond", None))


def marginal_scale(precond):
    """Marginal sd of each coordinate under N(m, L Lᵀ): the row norms of a dense L (…, d, d),
    L itself when diagonal (…, d)."""
    scale = np.asarray(precond.scale, np.float64)
    dense = scale.ndim == np.ndim(precond.mean) + 1
    return np.sqrt(np.sum(scale**2, axis=-1)) if dense else scale


# Each returns a Finding, or a string saying why the check does not apply.


def _rhat(run: RunData):
    x = np.swapaxes(run.draws, 0, 1) if run.population else run.draws  # sweeps as chains
    if run.population and x.shape[0] < 2:
        return "population kernel with one sweep (R-hat compares the sweeps)"
    if x.shape[1] < 4:
        return "fewer than 4 draws per chain"
    if run.population:
        limit = rhat_limit(*x.shape[:2], noise=RHAT_NOISE_SWEEPS)
        return check_rhat(x, run.names, limit, "sweeps")
    return check_rhat(x, run.names)


def _ess(run: RunData):
    if run.population:
        return "population kernel: a particle slot is not a Markov chain (see population_ess)"
    if run.draws.shape[1] < 4:
        return "fewer than 4 draws per chain"
    return check_ess(run.draws, run.names)


def _divergences(run: RunData):
    if "diverging" not in run.fields:
        return "the 'diverging' field was not collected"
    return check_divergences(run.fields["diverging"])


def _log_z(run: RunData):
    if "log_z" not in run.fields:
        return "no 'log_z' field (CMCD: run(..., extra_fields=('log_z', 'ess')))"
    log_z = run.fields["log_z"][0]  # particle 0: log Ẑ is the same for every particle of a sweep
    if np.size(log_z) < 2:
        return "one sweep"
    return check_log_z(log_z)


def _population_ess(run: RunData):
    if not run.population or "ess" not in run.fields:
        return "no 'ess' field of a population kernel (CMCD: run(..., extra_fields=('ess',)))"
    return check_population_ess(run.fields["ess"][0], run.fields["ess"].shape[0])


def _scale(run: RunData):
    if run.precond is None:
        return "no adapt_state.precond in the kernel's state (not a scoresample kernel)"
    x = run.draws.reshape(1, -1, run.draws.shape[-1]) if run.population else run.draws
    if x.shape[1] < 2:
        return "fewer than 2 draws per chain"
    return check_scale(x, marginal_scale(run.precond), run.names)


CHECKS = {
    "rhat_max": _rhat,
    "ess_per_draw": _ess,
    "divergence_rate": _divergences,
    "log_z_sd": _log_z,
    "population_ess": _population_ess,
    "scale_ratio": _scale,
}


def run_checks(run: RunData) -> RunCheck:
    """Every check of ``CHECKS`` that applies to ``run``; the others are listed as skipped."""
    values, problems, skipped = {}, [], []
    for name, fn in CHECKS.items():
        out = fn(run)
        if isinstance(out, str):
            skipped.append(f"{name}: {out}")
            continue
        values[name] = out.value
        problems += [out.problem] if out.problem else []
    return RunCheck(**values, problems=tuple(problems), skipped=tuple(skipped))


def check(mcmc, *, warn=True) -> RunCheck:
    """Inspect a finished ``numpyro.infer.MCMC`` run (after ``mcmc.run``) for signs that it is
    wrong: split R-hat, bulk ESS per draw, divergences, CMCD's log Ẑ spread and population ESS,
    and the draws' spread against the warmup's preconditioner (module docstring: which apply
    where). Missing extra fields skip their checks (``RunCheck.skipped`` says which and why).

    With ``warn`` (default True), one :class:`SuspectRunWarning` lists every problem found.
    Returns a :class:`RunCheck`: each check's measured value, ``problems``, ``skipped``, ``ok``.
    """
    result = run_checks(read_run(mcmc))
    if warn and result.problems:
        kernel = type(mcmc.sampler).__name__
        lines = "\n".join(f"  - {p}" for p in result.problems)
        warnings.warn(f"{kernel} run is probably wrong:\n{lines}", SuspectRunWarning, stacklevel=2)
    return result


# ---------------------------------------------------------------------------------------------
# Population kernels: draws grouped by sweep

# A choice, not a threshold tuned on runs: a lost trajectory (non-finite density on the way)
# gets weight zero, so the population only represents the paths that avoided those regions;
# correct runs at the defaults lose almost none, so more than 1 in 20 is reported
# (BENCHMARKS.md, "Population diagnostics": losses and the bias they came with).
MAX_LOST_RATE = 0.05
SWEEP_ROWS = 10  # print every sweep up to this many, else min / median / max per column


class SweepSummary(NamedTuple):
    """Per sweep (S,) of a population kernel's run; nan where the extra field was not collected.

    log_z: the sweep's log Ẑ (CMCD's ``log_z``); weight_ess: Kish ESS of its final weights, in
    particles (CMCD's ``ess``); unique: distinct draws among its N particles (resampling copies
    one particle into several slots); lost: trajectories lost within the sweep (CMCD's
    ``lost``); diverging: draws flagged ``diverging`` (the slot kept an earlier draw)."""

    log_z: np.ndarray
    weight_ess: np.ndarray
    unique: np.ndarray
    lost: np.ndarray
    diverging: np.ndarray


class PopulationSummary(NamedTuple):
    """What :func:`population_summary` reports.

    sweeps: :class:`SweepSummary`. num_particles: N. log_z: the sweeps' log Ẑ combined (log mean
    exp: unbiased in Z, a lost sweep counting as Ẑ = 0); log_z_sd: their sd (nan for one sweep).
    ess: the population bound on effective draws, Σ over sweeps of min(weight ESS, unique draws)
    (unique draws where the weight ESS was not collected): a sweep's N draws carry no more than
    its distinct particles, nor than its weights before the final resampling. It ignores the
    ancestry shared through earlier resamplings, so it can be several times too high when a few
    particles carry the weight. sites: per latent site, NumPyro's summary statistics
    (``numpyro.diagnostics.summary``) with each sweep as a chain of its particles, n_eff capped
    at ``ess``; empty below 4 particles (split R-hat halves a chain). That n_eff counts copies
    (neighbours in slot order) as correlated and the spread of the sweeps' means through
    NumPyro's between-chain variance, so it needs several sweeps to see sweep-to-sweep shifts.
    lost_rate: the share of trajectories lost (nan when ``lost`` was not collected). problems:
    what looks wrong (``MAX_LOST_RATE`` exceeded, sweeps that lost every particle)."""

    sweeps: SweepSummary
    num_particles: int
    log_z: float
    log_z_sd: float
    ess: float
    sites: dict
    lost_rate: float
    problems: tuple[str, ...]


def _require_population(mcmc) -> None:
    if mcmc.last_state is None:
        raise ValueError("population_summary(mcmc) reads a finished run: call mcmc.run first.")
    if not getattr(mcmc.sampler, "is_ensemble_kernel", False):
        raise ValueError(
            f"{type(mcmc.sampler).__name__} is not a population (ensemble) kernel: its chains "
            "are Markov chains, so use mcmc.print_summary()."
        )


def sweeps_as_chains(mcmc, exclude_deterministic=False):
    """A population kernel's samples regrouped as (sweeps, particles, ...): each sweep is one
    "chain" of its N particles, in their slot order. Accepted by ``numpyro.diagnostics.summary``
    and ``az.summary``; there R-hat compares the sweeps (independent given the frozen reference)
    and n_eff counts adjacent copies as correlated draws (the resampling leaves the copies of one
    particle in neighbouring slots). ``exclude_deterministic`` keeps the latent sites only."""
    _require_population(mcmc)
    samples = mcmc.get_samples(group_by_chain=True)
    latent = getattr(mcmc.last_state, mcmc.sampler.sample_field)
    if exclude_deterministic and isinstance(samples, dict) and isinstance(latent, dict):
        samples = {k: v for k, v in samples.items() if k in latent}
    return jax.tree.map(lambda a: np.swapaxes(np.asarray(a), 0, 1), samples)


def _per_sweep(fields, name, reduce, num_sweeps):
    """``reduce`` over the particles of extra field ``name`` (N, S) per sweep; nan if absent."""
    if name not in fields or np.ndim(fields[name]) != 2:
        return np.full(num_sweeps, np.nan)
    return reduce(np.asarray(fields[name], np.float64))


def sweep_summary(mcmc) -> SweepSummary:
    """Per-sweep diagnostics of a population kernel's run (see :class:`SweepSummary`)."""
    _require_population(mcmc)
    draws, _ = flat_draws(mcmc)  # (N, S, d)
    fields = mcmc.get_extra_fields(group_by_chain=True)
    num_sweeps = draws.shape[1]
    unique = [np.unique(draws[:, s], axis=0).shape[0] for s in range(num_sweeps)]
    return SweepSummary(
        log_z=_per_sweep(fields, "log_z", lambda a: a[0], num_sweeps),
        weight_ess=_per_sweep(fields, "ess", lambda a: a[0], num_sweeps),
        unique=np.asarray(unique, np.float64),
        lost=_per_sweep(fields, "lost", lambda a: a.sum(0), num_sweeps),
        diverging=_per_sweep(fields, "diverging", lambda a: a.sum(0), num_sweeps),
    )


def population_ess(sweeps: SweepSummary) -> float:
    """Σ over sweeps of min(weight ESS, unique draws); unique draws where the ESS is unknown."""
    weight = np.where(np.isnan(sweeps.weight_ess), np.inf, sweeps.weight_ess)
    return float(np.sum(np.minimum(weight, sweeps.unique)))


def _log_z_spread(log_z) -> tuple[float, float]:
    """(combined log Ẑ, sd over sweeps) of per-sweep values; nan where unknown."""
    x = np.asarray(log_z, np.float64)
    if np.all(np.isnan(x)):
        return math.nan, math.nan
    sd = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    x = np.where(np.isnan(x), -np.inf, x)  # as combine_log_z: a lost sweep estimates Z = 0
    top = float(np.max(x))
    if not math.isfinite(top):
        return -math.inf, sd
    return top + math.log(float(np.mean(np.exp(x - top)))), sd


def _population_problems(sweeps: SweepSummary, lost_rate: float) -> tuple[str, ...]:
    problems = []
    if lost_rate > MAX_LOST_RATE:
        problems.append(
            f"{lost_rate:.1%} of the trajectories were lost (non-finite density on the way; "
            f"more than {MAX_LOST_RATE:.0%}): the draws and log Ẑ only represent the paths "
            "that avoided those regions"
        )
    num_lost_sweeps = int(np.sum(np.isneginf(sweeps.log_z)))
    if num_lost_sweeps:
        problems.append(f"{num_lost_sweeps} sweeps lost every particle (log Ẑ = -inf)")
    return tuple(problems)


def population_summary(mcmc, prob=0.9, exclude_deterministic=True) -> PopulationSummary:
    """Summary of a population (ensemble) kernel's run with its draws grouped by sweep.

    ``mcmc.print_summary()`` and ``az.summary(az.from_numpyro(mcmc))`` take each particle slot
    as a chain: a slot is not a Markov chain (each sweep starts afresh) and the copies left by
    resampling count as independent draws there, and with fewer than 4 sweeps NumPyro's split
    R-hat fails. Here each sweep is a chain of its particles (:func:`sweeps_as_chains`), which
    works from one sweep on, and the per-sweep diagnostics say how much the population carries.
    CMCD's ``log_z``, ``ess`` and ``lost`` enter when collected
    (``mcmc.run(..., extra_fields=("log_z", "ess", "lost"))``). See :class:`PopulationSummary`.
    """
    sweeps = sweep_summary(mcmc)
    ess = population_ess(sweeps)
    samples = sweeps_as_chains(mcmc, exclude_deterministic)
    num_particles = jax.tree.leaves(samples)[0].shape[1]
    sites = numpyro_summary(samples, prob=prob) if num_particles >= 4 else {}
    for stats in sites.values():
        stats["n_eff"] = np.minimum(stats["n_eff"], ess)
    lost_rate = float(np.sum(sweeps.lost)) / (num_particles * sweeps.unique.size)
    return PopulationSummary(
        sweeps,
        num_particles,
        *_log_z_spread(sweeps.log_z),
        ess,
        sites,
        lost_rate,
        _population_problems(sweeps, lost_rate),
    )


SWEEP_COLUMNS = (
    ("log Z", "{:.2f}"),
    ("ESS(w)", "{:.1f}"),
    ("unique", "{:.0f}"),
    ("lost", "{:.0f}"),
    ("diverging", "{:.0f}"),
)


def _sweep_lines(sweeps: SweepSummary) -> list[str]:
    cols = np.stack(sweeps)  # (5, S)
    if cols.shape[1] <= SWEEP_ROWS:
        rows = [(str(s), cols[:, s]) for s in range(cols.shape[1])]
    else:
        with warnings.catch_warnings():  # an all-nan column (field not collected) stays nan
            warnings.simplefilter("ignore", RuntimeWarning)
            stats = (("min", np.nanmin), ("median", np.nanmedian), ("max", np.nanmax))
            rows = [(name, fn(cols, axis=1)) for name, fn in stats]
    lines = [f"{'sweep':>9}" + "".join(f" {name:>9}" for name, _ in SWEEP_COLUMNS)]
    for label, row in rows:
        cells = [fmt.format(v) for (_, fmt), v in zip(SWEEP_COLUMNS, row)]
        lines.append(f"{label:>9}" + "".join(f" {c:>9}" for c in cells))
    return lines


def _site_lines(sites: dict) -> list[str]:
    columns = list(next(iter(sites.values())).keys())
    names, rows = [], []
    for name, stats in sites.items():
        for idx in np.ndindex(np.shape(stats["mean"])):
            names.append(name + (f"[{','.join(map(str, idx))}]" if idx else ""))
            rows.append([np.asarray(stats[c])[idx] for c in columns])
    width = max(10, *map(len, names))
    lines = [f"{'':>{width}}" + "".join(f" {c:>9}" for c in columns)]
    lines += [f"{n:>{width}}" + "".join(f" {v:>9.2f}" for v in r) for n, r in zip(names, rows)]
    return lines


def format_population_summary(result: PopulationSummary, kernel: str = "population") -> str:
    """The text :func:`print_population_summary` prints."""
    sweeps, n = result.sweeps, result.num_particles
    num_sweeps = sweeps.unique.size
    lines = [
        f"{kernel}: {n} particles x {num_sweeps} sweeps; n_eff and r_hat below take each sweep "
        "as a chain of its particles",
        "",
        *_sweep_lines(sweeps),
        "",
    ]
    if not math.isnan(result.log_z):
        lines.append(f"log Z over sweeps: {result.log_z:.3f} (sd {result.log_z_sd:.3f})")
    lines.append(
        f"effective draws <= {result.ess:.0f} of {n * num_sweeps} "
        "(sum over sweeps of min(ESS(w), unique))"
    )
    if result.sites:
        lines += ["", *_site_lines(result.sites)]
    lines.append("")
    if not np.all(np.isnan(sweeps.diverging)):
        lines.append(f"Number of divergences: {int(np.nansum(sweeps.diverging))}")
    lines += [f"WARNING: {p}" for p in result.problems]
    return "\n".join(lines)


def print_population_summary(mcmc, prob=0.9, exclude_deterministic=True) -> PopulationSummary:
    """Print :func:`population_summary`, the population kernels' ``mcmc.print_summary()``: the
    per-sweep diagnostics, the combined log Ẑ, NumPyro's table with each sweep as a chain, the
    number of divergences and any problem. Returns the :class:`PopulationSummary`."""
    result = population_summary(mcmc, prob, exclude_deterministic)
    print(format_population_summary(result, type(mcmc.sampler).__name__))
    return result
