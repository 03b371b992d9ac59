"""Simulation-based calibration (scoresample.calibration), reduced: the full run over every kernel
is benchmarks/calibration.py.

Tolerances: a calibrated sampler fails the chi-square test (p < 1e-3) with probability 1e-3.
mean_z averages S per-simulation errors of the posterior mean in posterior sds, each with Monte
Carlo sd ≈ 1/sqrt(ESS) ≈ 0.15 for ~50 effective draws, so its sd is ≈ 0.015 at S = 100: 0.1 is
~7 sd. sd_ratio averages S ratios each with sd ≈ 1/sqrt(2 ESS) ≈ 0.1: ±0.1 is ~10 sd of the mean
and leaves room for the small bias of an unadjusted kernel (a few %).
"""

import numpy as np
import pytest
from scipy import stats

import scoresample
from scoresample import RandomizedMidpoint
from scoresample.calibration import chi_square_uniformity, plot_rank_histogram, sbc
from scoresample.targets.conjugate import ConjugateModel, beta_binomial, normal_normal


@pytest.mark.parametrize("make", [normal_normal, beta_binomial])
def test_machinery_on_exact_posterior_draws(make):
    result = sbc(make(), None, num_simulations=200)
    assert result.ranks.shape == (200,) and result.ranks.min() >= 0 and result.ranks.max() <= 99
    assert result.p_value > 1e-3
    assert abs(result.mean_z) < 0.05 and abs(result.sd_ratio - 1) < 0.05


def test_an_overconfident_posterior_fails():
    """Draws from a posterior half as wide as the exact one: ranks pile up at both ends."""
    good = normal_normal()
    narrow = ConjugateModel(
        "narrow",
        good.model,
        good.site,
        good.simulate,
        lambda y: stats.norm(good.posterior(y).mean(), 0.5 * good.posterior(y).std()),
    )
    result = sbc(narrow, None, num_simulations=100)
    assert result.p_value < 1e-6
    counts = np.bincount(result.ranks // 10, minlength=10)
    assert counts[0] + counts[-1] > 3 * counts[4:6].sum() / 2  # ∪-shaped


def test_chi_square_and_figure(tmp_path):
    ranks = np.repeat(np.arange(100), 2)  # exactly uniform
    stat, p = chi_square_uniformity(ranks, 99, 10)
    assert stat == 0.0 and p == 1.0
    with pytest.raises(ValueError, match="num_bins"):
        chi_square_uniformity(ranks, 99, 7)
    result = sbc(normal_normal(), None, num_simulations=50)
    plot_rank_histogram(result, str(tmp_path / "ranks.png"))
    assert (tmp_path / "ranks.png").stat().st_size > 1000


@pytest.mark.slow
def test_randomized_midpoint_is_calibrated_on_beta_binomial():
    """100 simulated data sets, all in one batched (vmapped) run; the logit scale of p tests the
    constrained-space handling too."""
    result = sbc(
        beta_binomial(),
        lambda m: RandomizedMidpoint(m, num_steps=5),
        num_simulations=100,
        num_draws=49,
        num_bins=10,
        num_warmup=100,
        thin=2,
    )
    assert result.method == "batched" and result.diverging == 0.0
    assert result.p_value > 1e-3, result.summary()["counts"]
    assert abs(result.mean_z) < 0.1
    assert abs(result.sd_ratio - 1) < 0.1


# The other kernels, reduced: normal–normal, S = 100 data sets (all inferences batched), L = 19
# draws each on 10 bins (10 per bin expected); the tolerances above hold (per-simulation draws
# are independent trajectories or particles, so ESS ≈ L and mean_z's sd ≈ 1/sqrt(19 S) ≈ 0.023).
# Contract-sized settings (tests/kernels.py) except where a kernel's small settings are biased.
OTHER_KERNELS = {
    "RDMC": lambda m: scoresample.RDMC(m),
    "MultALMC": lambda m: scoresample.MultALMC(m, num_steps=25, fast_chains=4),
    "MultCDiff": lambda m: scoresample.MultCDiff(m, num_steps=25, fast_chains=4),
    "EnsembleDiffusion": lambda m: scoresample.EnsembleDiffusion(m),
    "CMCD": lambda m: scoresample.CMCD(m, num_steps=32, num_blocks=4),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OTHER_KERNELS))
def test_other_kernels_are_calibrated_on_normal_normal(name):
    population = name in ("EnsembleDiffusion", "CMCD")
    result = sbc(
        normal_normal(),
        OTHER_KERNELS[name],
        num_simulations=100,
        num_draws=19,
        num_bins=10,
        num_warmup=30,
        thin=1,  # every iteration is a fresh trajectory / sweep
        num_particles=64 if population else 33,
    )
    assert result.method == "batched" and result.diverging < 0.01
    assert result.p_value > 1e-3, result.summary()["counts"]
    assert abs(result.mean_z) < 0.1, result.summary()
    assert abs(result.sd_ratio - 1) < 0.1, result.summary()
