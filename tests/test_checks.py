"""scoresample.check: a run that is probably wrong says so (issue 12), a good one stays silent.

Sizes and values measured in float32 on 2 shared CPU cores (seeds 0-2 or 0-4 while choosing, one
fixed here). The old MAP + Laplace warmup (preconditioner="laplace") on the 10-D hierarchical
funnel: RandomizedMidpoint (4 chains x (100 + 100)) split R-hat 1.57-1.90 (limit 1.046), bulk ESS
per draw 0.015-0.019 (limit 0.05), draws-to-reference sd ratio 11.9-17.4 (limit 10); CMCD (128
particles, 32 steps, 30 + 48 sweeps, annealed from the Laplace Gaussian) log Ẑ sd 1.32-1.59
(limit 1), R-hat over sweeps 1.43-1.55 (limit 1.018), population ESS 0.039-0.061 N (limit 0.1).
A conjugate model with a 3-D Gaussian posterior: RandomizedMidpoint (4 x (200 + 200)) R-hat
<= 1.009 (limit 1.023), ESS per draw >= 0.90, ratio 0.82-1.11; CMCD (256 particles, 32 steps,
30 + 8 sweeps, annealed from the prior or from the Gaussian) R-hat over sweeps <= 1.0082 (limit
1.024), log Ẑ sd 0.025-0.150, population ESS 0.83-0.90 N, ratio 0.96-1.03."""

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.infer import MCMC

import scoresample
from scoresample import checks
from scoresample.adapt.preconditioner import Preconditioner
from scoresample.checks import RunData, SuspectRunWarning, check, run_checks
from scoresample.infer.base import LocalReferenceWarning
from scoresample.targets.priors import hierarchical_funnel


def _run(kernel, num_chains, num_warmup, num_samples, *args, seed=0, **run_kwargs):
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LocalReferenceWarning)  # expected with "laplace"
        mcmc.run(jax.random.key(seed), *args, **run_kwargs)
    return mcmc


def gaussian_model():
    """A conjugate model whose posterior is a 3-D Gaussian in the unconstrained space, one site
    constrained: x ~ N(0, 2² I₂), y ~ N(x, 0.5²) observed (x | y: sd 0.485); s ~ LogNormal(0, 1),
    w ~ LogNormal(log s, 0.5²) observed at 2 (log s | w ~ N(0.555, 0.447²))."""
    x = numpyro.sample("x", dist.Normal(0.0, 2.0).expand([2]).to_event(1))
    numpyro.sample("y", dist.Normal(x, 0.5).to_event(1), obs=jnp.array([1.0, -1.0]))
    s = numpyro.sample("s", dist.LogNormal(0.0, 1.0))
    numpyro.sample("w", dist.LogNormal(jnp.log(s), 0.5), obs=2.0)


@pytest.fixture(scope="module")
def gaussian_rmp():
    return _run(scoresample.RandomizedMidpoint(gaussian_model), 4, 200, 200)


# ---------------------------------------------------------------------------------------------
# The old settings' funnel: flagged


def test_funnel_old_warmup_flagged_per_chain():
    target = hierarchical_funnel(10)
    kernel = scoresample.RandomizedMidpoint(target.model, preconditioner="laplace")
    mcmc = _run(kernel, 4, 100, 100, *target.model_args)
    with pytest.warns(SuspectRunWarning, match="RandomizedMidpoint run is probably wrong"):
        report = check(mcmc)
    # Every chain stuck in the neck at its own depth (measured R-hat 1.57-1.90, ESS/draw <= 0.019).
    assert not report.ok
    assert report.rhat_max > 1.3 and report.ess_per_draw < 0.03
    assert any("split R-hat" in p and "chains disagree" in p for p in report.problems)
    assert any("bulk ESS per draw" in p for p in report.problems)
    # In the neck the chains' steps are unstable: RMP undoes them and flags the draws (measured
    # 54% of draws; before the energy guard nothing was flagged).
    assert report.divergence_rate > 0.01
    assert any(s.startswith("log_z_sd") for s in report.skipped)


def old_cmcd_settings() -> dict:
    """The warmup before issue 12 (MAP + Laplace) and the annealing path from that Gaussian
    (``anneal_from="gaussian"`` where CMCD offers a choice; the only path before it did)."""
    params = inspect.signature(scoresample.CMCD).parameters
    return {
        "preconditioner": "laplace",
        **({"anneal_from": "gaussian"} if "anneal_from" in params else {}),
    }


def test_funnel_old_warmup_flagged_cmcd():
    target = hierarchical_funnel(10)
    kernel = scoresample.CMCD(target.model, num_steps=32, **old_cmcd_settings())
    mcmc = _run(kernel, 128, 30, 48, *target.model_args, extra_fields=("log_z", "ess"))
    with pytest.warns(SuspectRunWarning, match="CMCD run is probably wrong"):
        report = check(mcmc)
    # Every particle in the neck (v about -33, log Ẑ about -67 for 0). Measured over seeds 0-4:
    # log Ẑ sd over sweeps 1.32-1.59, R-hat over sweeps 1.43-1.55, population ESS 0.039-0.061 N
    # (16 sweeps instead of 48: log Ẑ sd 1.13-1.74, too close to the limit 1).
    assert report.log_z_sd > 1.1 and report.rhat_max > 1.2 and report.population_ess < 0.09
    assert any("log Ẑ of the 48 sweeps spreads" in p for p in report.problems)
    assert any("the sweeps disagree" in p for p in report.problems)
    assert any("population ESS" in p for p in report.problems)
    assert any(s.startswith("ess_per_draw: population kernel") for s in report.skipped)


# ---------------------------------------------------------------------------------------------
# A well-sampled Gaussian: silent


def test_gaussian_silent_per_chain(gaussian_rmp):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SuspectRunWarning)
        report = check(gaussian_rmp)
    assert report.ok, report.problems
    assert report.rhat_max < 1.02 and report.ess_per_draw > 0.3
    assert 0.5 < report.scale_ratio < 2.0


def test_gaussian_silent_cmcd():
    kernel = scoresample.CMCD(gaussian_model, num_steps=32)
    mcmc = _run(kernel, 256, 30, 8, extra_fields=("log_z", "ess"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SuspectRunWarning)
        report = check(mcmc)
    assert report.ok, report.problems
    assert report.log_z_sd < 0.5 and report.population_ess > 0.3
    assert report.skipped == (
        "ess_per_draw: population kernel: a particle slot is not a Markov chain "
        "(see population_ess)",
    )


def test_flat_draws_are_the_kernels_unconstrained_state(gaussian_rmp):
    """The scale check compares in the preconditioner's space: the flat unconstrained one."""
    draws, names = checks.flat_draws(gaussian_rmp)
    assert draws.shape == (4, 200, 3) and names == ["s", "x[0]", "x[1]"]
    last = jax.vmap(lambda z: ravel_pytree(z)[0])(gaussian_rmp.last_state.z)
    np.testing.assert_allclose(draws[:, -1], last, rtol=1e-5, atol=1e-5)
    assert abs(np.mean(draws[..., 0]) - 0.555) < 0.1  # log s, not s (E s = 1.93)


# ---------------------------------------------------------------------------------------------
# Each check on synthetic arrays


def test_rhat_flags_shifted_chains():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4, 400, 2))
    assert checks.check_rhat(draws).problem is None
    draws[0, :, 1] += 1.0
    found = checks.check_rhat(draws, names=["a", "b"])
    assert found.value > 1.05 and "(b)" in found.problem


def test_rhat_limit_loosens_for_short_chains():
    assert checks.rhat_limit(4, 50) == pytest.approx(1 + 8 / (50 * 3**0.5))
    assert checks.rhat_limit(2, 200) == pytest.approx(1.04)
    assert checks.rhat_limit(4, 500) == checks.rhat_limit(1, 4000) == checks.MAX_RHAT


def test_rhat_limit_holds_for_independent_draws():
    """Independent draws exceed the limit rarely (a measured 1% quantile sets RHAT_NOISE)."""
    rng = np.random.default_rng(4)
    for shape in [(2, 100, 10), (4, 50, 10), (8, 100, 10)]:
        found = [checks.check_rhat(rng.normal(size=shape)) for _ in range(40)]
        assert sum(f.problem is not None for f in found) <= 2, shape


def test_ess_flags_a_random_walk():
    rng = np.random.default_rng(1)
    assert checks.check_ess(rng.normal(size=(4, 200, 2))).problem is None
    walk = np.cumsum(rng.normal(size=(4, 200, 2)), axis=1)
    found = checks.check_ess(walk)
    assert found.value < checks.MIN_ESS_PER_DRAW and "barely move" in found.problem


def test_divergence_rate():
    diverging = np.zeros((4, 100), bool)
    assert checks.check_divergences(diverging).value == 0.0
    diverging[0, :5] = True  # 1.25% of the draws
    found = checks.check_divergences(diverging)
    assert found.value == pytest.approx(0.0125) and "diverged" in found.problem


def test_log_z_spread():
    assert checks.check_log_z([-1.0, -1.2, -0.9, -1.1]).problem is None
    assert "spreads" in checks.check_log_z([0.0, 3.0, -3.0, 0.5]).problem
    assert checks.check_log_z([0.0, -np.inf, 0.1]).problem is not None  # a lost sweep fails


def test_population_ess():
    assert checks.check_population_ess([200.0, 150.0, 220.0], 256).problem is None
    found = checks.check_population_ess([3.0, 2.0, 50.0], 256)
    assert found.value == pytest.approx(3.0 / 256) and "few particles" in found.problem


def test_scale_ratio_against_dense_and_diagonal_preconditioners():
    rng = np.random.default_rng(2)
    draws = rng.normal(size=(2, 500, 3)) * np.array([1.0, 2.0, 0.5])
    diag = Preconditioner(np.zeros(3), np.array([1.0, 2.0, 0.5]))
    assert checks.check_scale(draws, checks.marginal_scale(diag)).problem is None
    # A dense L with the same marginal sds: rows of norm 1, 2, 0.5.
    dense_l = np.array([[1.0, 0, 0], [1.2, 1.6, 0], [0.3, 0.0, 0.4]])
    dense = Preconditioner(np.zeros(3), dense_l)
    np.testing.assert_allclose(checks.marginal_scale(dense), [1.0, 2.0, 0.5])
    narrow = Preconditioner(np.zeros(3), np.array([1.0, 2.0, 0.01]))
    found = checks.check_scale(draws, checks.marginal_scale(narrow), names=["a", "b", "c"])
    assert found.value == pytest.approx(50.0, rel=0.1) and "(c;" in found.problem


def _synthetic_run(population, fields, num_chains=4, num_draws=100):
    draws = np.random.default_rng(3).normal(size=(num_chains, num_draws, 2))
    precond = Preconditioner(np.zeros(2), np.ones(2))
    return RunData(draws, ["a", "b"], population, fields, precond)


def test_missing_fields_are_skipped_not_fatal():
    report = run_checks(_synthetic_run(False, {}))
    assert report.ok and np.isfinite(report.rhat_max) and np.isfinite(report.scale_ratio)
    skipped = {s.split(":")[0] for s in report.skipped}
    assert skipped == {"divergence_rate", "log_z_sd", "population_ess"}
    assert np.isnan(report.divergence_rate) and np.isnan(report.log_z_sd)


def test_population_without_fields_or_second_sweep():
    # 64 particles, one sweep, no extra fields: only the scale check applies.
    report = run_checks(_synthetic_run(True, {}, num_chains=64, num_draws=1))
    assert report.ok and np.isfinite(report.scale_ratio)
    assert {s.split(":")[0] for s in report.skipped} == set(checks.CHECKS) - {"scale_ratio"}


def test_population_fields_are_read_per_sweep():
    n, sweeps = 64, 5
    log_z = np.tile(np.array([0.0, 4.0, -4.0, 0.0, 0.1]), (n, 1))
    fields = {"log_z": log_z, "ess": np.full((n, sweeps), 1.0), "diverging": np.zeros((n, sweeps))}
    report = run_checks(_synthetic_run(True, fields, num_chains=n, num_draws=sweeps))
    assert report.log_z_sd == pytest.approx(np.std(log_z[0], ddof=1))
    assert report.population_ess == pytest.approx(1.0 / n)
    assert len(report.problems) == 2 and report.divergence_rate == 0.0


def test_check_warns_once_listing_every_problem(monkeypatch):
    bad = checks.RunCheck(problems=("first", "second"))
    monkeypatch.setattr(checks, "read_run", lambda mcmc: None)
    monkeypatch.setattr(checks, "run_checks", lambda run: bad)

    class Fake:
        sampler = object()

    with pytest.warns(SuspectRunWarning) as record:
        assert check(Fake()) is bad
    assert len(record) == 1 and "- first" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not check(Fake(), warn=False).ok
