"""Diagnostics of population kernels (issue 17): what ``diverging`` means for CMCD, and a summary
that works for few sweeps and counts resampled copies (``scoresample.checks.population_summary``).

A population kernel's MCMC "chains" are its particles and one iteration is one sweep, so NumPyro's
``mcmc.print_summary()`` (split R-hat needs 4 draws per chain) cannot summarise 2 sweeps, and ArviZ
takes particle slots for chains. Sizes are small (64-128 particles, short paths) to keep the
module near a minute on 2 CPU cores; every check below is exact (counts, identities) or has a
wide margin, stated where it is statistical."""

import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC

import scoresample
from scoresample import checks
from scoresample.infer.cmcd import _sweep_stats
from scoresample.samplers import cmcd as C

SMALL = {"num_steps": 16, "num_blocks": 2}  # a short path: fast to compile and run
FIELDS = ("log_z", "ess", "lost")


def gaussian_model():
    """x ~ N((1, -1), diag(1, 0.3²)): log Z = 0."""
    numpyro.sample("x", dist.Normal(jnp.array([1.0, -1.0]), jnp.array([1.0, 0.3])).to_event(1))


def run(kernel, num_chains, num_warmup, num_samples, seed=0, **kw):
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(seed), **kw)
    return mcmc


@pytest.fixture(scope="module")
def two_sweeps():
    """CMCD, 128 particles, 10 warmup sweeps, 2 sampling sweeps."""
    return run(scoresample.CMCD(gaussian_model, **SMALL), 128, 10, 2, extra_fields=FIELDS)


# ---------------------------------------------------------------------------------------------
# A summary of 2 sweeps


def test_summary_of_two_sweeps(two_sweeps, capsys):
    result = checks.print_population_summary(two_sweeps)
    out = capsys.readouterr().out
    assert "128 particles x 2 sweeps" in out and "x[1]" in out and "log Z over sweeps" in out
    assert "Number of divergences: 0" in out and "WARNING" not in out
    s = result.sweeps
    ef = two_sweeps.get_extra_fields(group_by_chain=True)
    np.testing.assert_allclose(s.log_z, np.asarray(ef["log_z"])[0])
    np.testing.assert_allclose(s.weight_ess, np.asarray(ef["ess"])[0])
    assert np.all(s.lost == 0) and np.all(s.diverging == 0) and result.problems == ()
    # Resampling leaves copies: fewer distinct draws than particles in every sweep.
    assert np.all(s.unique < 128) and np.all(s.unique >= 2)
    assert result.ess == pytest.approx(np.sum(np.minimum(s.weight_ess, s.unique)))
    assert result.log_z == pytest.approx(float(C.combine_log_z(s.log_z)), abs=1e-5)
    assert result.log_z_sd == pytest.approx(np.std(s.log_z, ddof=1))
    # Sampled well: log Z = 0 within a 2-d Gaussian's sweep noise (measured |log Ẑ| < 0.1).
    assert abs(result.log_z) < 0.5
    stats = result.sites["x"]
    assert np.all(stats["n_eff"] <= result.ess) and np.all(np.isfinite(stats["r_hat"]))
    np.testing.assert_allclose(stats["mean"], [1.0, -1.0], atol=0.3)


def test_progress_bar_shows_the_sweep(two_sweeps):
    text = two_sweeps.sampler.get_diagnostics_str(two_sweeps.last_state)
    assert "log Z" in text and "ESS" in text and "/128" in text and "lost 0%" in text


def test_copies_sit_in_adjacent_slots(two_sweeps):
    """n_eff along a sweep counts copies as correlated draws only if they are neighbours."""
    x = np.asarray(two_sweeps.get_samples(group_by_chain=True)["x"])  # (N, S, 2)
    for s in range(x.shape[1]):
        _, first = np.unique(x[:, s], axis=0, return_inverse=True)
        first = first.reshape(-1)
        runs = 1 + np.count_nonzero(np.diff(first))  # blocks of equal draws
        assert runs == len(np.unique(first)), f"sweep {s}: a copy is not next to its twin"


def test_arviz_summary_by_sweep(two_sweeps):
    """ArviZ on slots as chains gives NaN with 2 draws; grouped by sweep it gives numbers."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "more chains than draws"
        table = az.summary(checks.sweeps_as_chains(two_sweeps))
    assert np.all(np.isfinite(table["ess_bulk"])) and np.all(np.isfinite(table["r_hat"]))
    assert np.all(table["ess_bulk"] <= 2 * 128)


def test_summary_refuses_a_per_chain_run():
    class PerChain:
        last_state = object()
        sampler = scoresample.RandomizedMidpoint(gaussian_model)

    with pytest.raises(ValueError, match="print_summary"):
        checks.population_summary(PerChain())


# ---------------------------------------------------------------------------------------------
# diverging: the draw is suspect; lost: a trajectory was dropped within the sweep


@pytest.mark.filterwarnings("ignore:.*warmup reference is local")
def test_nan_region_loses_trajectories_not_draws():
    """A NaN region (x0 > 1): CMCD loses the trajectories that enter it (weight zero), and the
    resampling fills their slots with survivors: ``lost`` is set, ``diverging`` is not."""

    def potential(x):
        return jnp.where(x[0] > 1.0, jnp.nan, 0.5 * jnp.sum(x**2))

    n = 64
    kernel = scoresample.CMCD(potential_fn=potential, **SMALL)
    mcmc = run(kernel, n, 10, 4, init_params=jnp.zeros((n, 2)), extra_fields=FIELDS)
    x = np.asarray(mcmc.get_samples(group_by_chain=True))
    ef = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    assert np.all(np.isfinite(x)) and np.all(x[..., 0] <= 1.0)
    assert ef["lost"].mean() > 0.05  # P(x0 > 1) = 0.16 under the target's unit scale
    assert not ef["diverging"].any()
    assert np.all(np.isfinite(ef["log_z"]))
    result = checks.population_summary(mcmc)
    assert result.lost_rate == pytest.approx(ef["lost"].mean())
    assert any("trajectories were lost" in p for p in result.problems)


def test_sweep_stats_come_from_the_slots_kept():
    """Slots the front rejected hold the previous sweep's state: the sweep's log Ẑ and ESS come
    from a kept slot; a sweep that kept none reports log Ẑ = -inf (Ẑ = 0) and ESS 0."""
    ss = C.CMCDState(
        position=jnp.zeros((4, 1)),
        logdensity=jnp.zeros(4),
        logdensity_grad=jnp.zeros((4, 1)),
        log_z=jnp.array([7.0, -2.0, -2.0, 7.0]),  # slots 0 and 3: the previous sweep's
        ess=jnp.array([9.0, 3.0, 3.0, 9.0]),
        log_weights=jnp.zeros(4),
        diverged=jnp.zeros(4, bool),
        loss=jnp.zeros(4),
    )
    kept = jnp.array([False, True, True, False])
    stats = _sweep_stats(ss, kept)
    np.testing.assert_array_equal(stats.log_z, -2.0)
    np.testing.assert_array_equal(stats.ess, 3.0)
    none = _sweep_stats(ss, jnp.zeros(4, bool))
    assert np.all(np.isneginf(none.log_z)) and np.all(none.ess == 0)
    assert np.all(np.isneginf(none.log_weights))


# ---------------------------------------------------------------------------------------------
# EnsembleDiffusion: no resampling, no weights


def test_ensemble_summary_of_two_iterations(capsys):
    kernel = scoresample.EnsembleDiffusion(gaussian_model, num_steps=8, num_samples=2)
    mcmc = run(kernel, 64, 10, 2)
    result = checks.print_population_summary(mcmc)
    assert "EnsembleDiffusion: 64 particles x 2 sweeps" in capsys.readouterr().out
    s = result.sweeps
    assert np.all(s.unique == 64) and np.all(np.isnan(s.log_z)) and np.isnan(result.log_z)
    assert result.ess == 128 and np.isnan(result.lost_rate) and result.problems == ()
    assert np.all(result.sites["x"]["n_eff"] <= 128)
