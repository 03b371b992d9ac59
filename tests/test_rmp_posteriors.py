"""RandomizedMidpoint through MCMC on targets with exact or reference answers.

Tolerances: means within 0.1 sd and sds within 5% (10% for eight schools) of the truth. With
ESS ≈ n per coordinate the Monte Carlo sd of a mean is sd/sqrt(n) and of an sd ≈ sd/sqrt(2n);
the runs below have n ≥ 3000 per coordinate, so the 4-sigma MC error of the worst of 100
coordinates is ≤ 0.07 sd (mean) and ≤ 5% (sd); what is left is the room for the sampler's bias.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC
from scipy import stats

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
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eight_schools_against_posteriordb(seed):
    """Seed 2 failed with per-chain MAP + Laplace starts (tau z 0.29, sd error 43%: one chain
    thrown to log tau = -32); the shared Pathfinder reference and pooled adaptation fixed it."""
    t = eight_schools()
    mcmc = sample(t, num_chains=4, num_warmup=500, num_samples=1500, seed=seed)
    draws = eight_schools_constrained(mcmc.get_samples())
    ref = t.extra["reference"]
    for name, ref_stats in ref.items():
        v = draws[name]
        z = abs(v.mean() - ref_stats["mean"]) / ref_stats["sd"]
        rel_sd = abs(v.std() / ref_stats["sd"] - 1)
        assert z < 0.15, (name, z)
        assert rel_sd < 0.10, (name, rel_sd)


CUT = 1.5  # N(0, 1) with the density undefined (NaN) for x > CUT


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_nan_region_density(seed):
    """N(0, 1) where the potential is NaN beyond x = 1.5: the draws are the truncated normal's
    (mean -0.139, sd 0.879). Before the velocity reversal the means of three seeds were 0.63,
    0.10, 1.06 (the edge was sticky). 4 chains x 1000 draws, ESS >~ 1000: MC sd of the mean
    <~ 0.03, of the sd <~ 2.5%; allowed 0.1 and 10% (the issue's bar)."""
    truth = stats.truncnorm(-np.inf, CUT)
    potential = lambda p: jnp.where(p["x"] > CUT, jnp.nan, 0.5 * p["x"] ** 2)
    kernel = scoresample.RandomizedMidpoint(potential_fn=potential)
    mcmc = MCMC(
        kernel,
        num_warmup=500,
        num_samples=1000,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(seed), init_params={"x": jnp.zeros(4)}, extra_fields=("diverging",))
    x = np.asarray(mcmc.get_samples()["x"])
    assert x.max() <= CUT
    assert abs(x.mean() - truth.mean()) < 0.1, x.mean()
    assert abs(x.std() / truth.std() - 1) < 0.10, x.std()
    # The draws whose steps met the edge are flagged, not hidden.
    assert 0 < np.asarray(mcmc.get_extra_fields()["diverging"]).mean() < 0.5
