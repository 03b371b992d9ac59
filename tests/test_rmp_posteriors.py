"""RandomizedMidpoint through MCMC on targets with exact or reference answers.

Tolerances: means within 0.1 sd and sds within 5% (10% for eight schools) of the truth. With
ESS ≈ n per coordinate the Monte Carlo sd of a mean is sd/sqrt(n) and of an sd ≈ sd/sqrt(2n);
the runs below have n ≥ 3000 per coordinate, so the 4-sigma MC error of the worst of 100
coordinates is ≤ 0.07 sd (mean) and ≤ 5% (sd); what is left is the room for the sampler's bias.
"""

import jax
import numpy as np
import pytest

import scoresample
from scoresample.bench import make_mcmc
from scoresample.targets import (
    eight_schools,
    eight_schools_constrained,
    ill_conditioned_gaussian,
    isotropic_gaussian,
)


def sample(target, num_chains, num_warmup, num_samples, seed=0, **kw):
    kernel = scoresample.RandomizedMidpoint(target.model, **kw)
    mcmc = make_mcmc(kernel, num_chains, num_warmup, num_samples)
    mcmc.run(jax.random.key(seed), *target.model_args)
    return mcmc


@pytest.mark.slow
@pytest.mark.parametrize(
    "target",
    [isotropic_gaussian(10, scale=2.0, shift=1.0), ill_conditioned_gaussian(100, 1e4)],
    ids=["isotropic10", "illcond100"],
)
def test_gaussian_moments(target):
    mcmc = sample(target, num_chains=8, num_warmup=300, num_samples=600)
    x = np.asarray(mcmc.get_samples()["x"])
    if target.dim > 10:
        # Judge in the covariance's eigenbasis, where the coordinates are independent.
        lam, vec = np.linalg.eigh(target.cov)
        x, mean, sd = x @ vec, target.mean @ vec, np.sqrt(lam)
    else:
        mean, sd = target.mean, target.sd
    z = (x.mean(0) - mean) / sd
    assert np.max(np.abs(z)) < 0.1, np.max(np.abs(z))
    np.testing.assert_allclose(x.std(0) / sd, 1.0, atol=0.05)


@pytest.mark.slow
def test_eight_schools_against_posteriordb():
    t = eight_schools()
    mcmc = sample(t, num_chains=4, num_warmup=500, num_samples=1500)
    draws = eight_schools_constrained(mcmc.get_samples())
    ref = t.extra["reference"]
    for name, ref_stats in ref.items():
        v = draws[name]
        z = abs(v.mean() - ref_stats["mean"]) / ref_stats["sd"]
        rel_sd = abs(v.std() / ref_stats["sd"] - 1)
        assert z < 0.15, (name, z)
        assert rel_sd < 0.10, (name, rel_sd)
