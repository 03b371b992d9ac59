"""Models at the edges of NumPyro's MCMC contract, for every kernel (a reduced copy of the tests
of NumPyro's test/infer/test_mcmc.py that NUTS passes: empty model, only deterministic sites,
a site with zero unconstrained dimensions, reruns with new data), and the compiled start kept
across runs (issue 17)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC

import scoresample
from scoresample.adapt.smoothness import NonSmoothDensityWarning
from scoresample.infer.compiled import INIT_CACHE
from scoresample.targets.posteriors import eight_schools_model
from tests.kernels import KERNELS

NAMES = sorted(KERNELS)
EIGHT_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
EIGHT_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])


def run(name, model, *args, num_chains=2, method="vectorized", seed=0, fields=(), **kw):
    factory, _ = KERNELS[name]
    mcmc = MCMC(
        factory(model=model),
        num_warmup=4,
        num_samples=5,
        num_chains=num_chains,
        chain_method=method,
        progress_bar=False,
        **kw,
    )
    mcmc.run(jax.random.key(seed), *args, extra_fields=fields)
    return mcmc


def empty_model():
    pass


def observed_only():
    numpyro.sample("y", dist.Normal(0.0, 1.0), obs=1.0)


def deterministic_only():
    numpyro.deterministic("x", jnp.array([1.0, 2.0]))


def trivial_dirichlet():
    x = numpyro.sample("x", dist.Dirichlet(jnp.ones(1)).expand([4]))
    numpyro.sample("y", dist.Normal(x, 1.0), obs=2.0)


def methods(name):
    # The per-chain path (sequential, parallel) is the same adapter code for every per-chain
    # kernel: one of them covers it.
    return ["vectorized", "sequential"] if name == "RandomizedMidpoint" else ["vectorized"]


@pytest.mark.parametrize("name", NAMES)
def test_models_without_latent_dimensions(name, capsys):
    for method in methods(name):
        for model in (empty_model, observed_only):
            mcmc = run(name, model, method=method)
            assert mcmc.get_samples() == {}
        mcmc = run(name, deterministic_only, method=method)
        np.testing.assert_array_equal(mcmc.get_samples()["x"], np.tile([1.0, 2.0], (10, 1)))
        # a Dirichlet over one category has no free coordinate: x is 1, as with NUTS
        mcmc = run(name, trivial_dirichlet, method=method, fields=("num_grad_evals",))
        np.testing.assert_array_equal(mcmc.get_samples()["x"], np.ones((10, 4, 1)))
        ef = mcmc.get_extra_fields()
        assert not np.any(ef["diverging"]) and np.all(ef["num_grad_evals"] == 0)
    run(name, empty_model).print_summary()  # NumPyro's test_empty_summary
    assert "mean" not in capsys.readouterr().out


def location_model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    numpyro.sample("y", dist.Normal(mu, 0.1), obs=y)


@pytest.mark.parametrize("name", ["RandomizedMidpoint", "CMCD"])
def test_compiled_start_kept_across_runs_and_kernels(name):
    """A second run with new data of the same shape, or a new kernel with the same settings,
    reuses the compiled start and samples the new posterior; data of a new shape too (the
    compiled function is traced again for it)."""
    y1, y2 = np.full(20, 3.0), np.full(20, -3.0)
    INIT_CACHE.clear()
    mcmc = run(name, location_model, y1, num_chains=4, jit_model_args=True)
    assert (INIT_CACHE.hits, INIT_CACHE.misses) == (0, 1)
    mcmc.run(jax.random.key(1), y2)  # posterior N(-3, 0.1^2 / 20) up to the prior
    assert INIT_CACHE.hits == 1
    assert abs(np.mean(mcmc.get_samples()["mu"]) + 3.0) < 0.1
    run(name, location_model, y1, num_chains=4)  # a new kernel, the same settings
    assert INIT_CACHE.hits == 2
    mcmc = run(name, location_model, np.full(30, -1.0), num_chains=4)  # a new shape of data
    assert abs(np.mean(mcmc.get_samples()["mu"]) + 1.0) < 0.1
    assert INIT_CACHE.misses == 1


def model_with_optional_sites(a=None, b=None, z=None):
    """NumPyro's test_model_with_multiple_exec_paths: the arguments decide the latent sites."""
    c = numpyro.sample("c", dist.Normal(0.0, 0.2))
    mu = c
    if a is not None:
        mu = mu + a * numpyro.sample("x", dist.HalfNormal(0.5))
    if b is not None:
        mu = mu + b * numpyro.sample("w", dist.HalfNormal(0.5))
    numpyro.sample("obs", dist.Normal(mu, 1.0), obs=z)


def test_arguments_that_change_the_latent_sites():
    a, b, z = np.linspace(0.5, 2.0, 10), np.linspace(1.0, 3.0, 10), np.zeros(10)
    factory, _ = KERNELS["RandomizedMidpoint"]
    mcmc = MCMC(factory(model=model_with_optional_sites), num_warmup=4, num_samples=5)
    mcmc._progress_bar = False
    mcmc.run(jax.random.key(1), a, b=None, z=z)
    assert set(mcmc.get_samples()) == {"c", "x"}
    mcmc.run(jax.random.key(2), a=None, b=b, z=z)
    assert set(mcmc.get_samples()) == {"c", "w"}
    mcmc.run(jax.random.key(3), a=a, b=b, z=z)
    assert set(mcmc.get_samples()) == {"c", "x", "w"}


def model_needing_concrete_data(counts):
    # np.unique needs concrete values: traced data cannot build this model
    levels = np.unique(np.asarray(counts)).size
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([levels]))
    numpyro.sample("obs", dist.Normal(w.sum(), 1.0), obs=0.0)


def test_model_that_needs_concrete_arguments():
    mcmc = run("RandomizedMidpoint", model_needing_concrete_data, np.array([1, 2, 2, 5]))
    assert mcmc.get_samples()["w"].shape == (10, 3)


def gaussian3():
    numpyro.sample("x", dist.Normal(0.0, 1.0).expand([3]))


NUMPYRO_NAMES = [  # (keyword arguments, None if accepted, else (error, words the message names))
    ({"target_accept_prob": 0.9}, None),
    ({"adapt_mass_matrix": False}, None),
    ({"inverse_mass_matrix": np.ones(3)}, None),
    ({"inverse_mass_matrix": np.eye(3)}, None),
    ({"max_tree_depth": 8}, (ValueError, "max_tree_depth")),
    ({"trajectory_length": 2.0}, (ValueError, "trajectory_length")),
    ({"find_heuristic_step_size": True}, (ValueError, "find_heuristic_step_size")),
    ({"forward_mode_differentiation": True}, (ValueError, "forward_mode_differentiation")),
    ({"num_chains": 8}, (ValueError, "MCMC")),
    ({"dense_mass": [("x",)]}, (ValueError, "dense_mass")),
    ({"inverse_mass_matrix": {("x",): np.ones(3)}}, (ValueError, "inverse_mass_matrix")),
    ({"inverse_mass_matrix": -np.ones(3)}, (ValueError, "inverse_mass_matrix")),
    ({"target_accept": 0.9, "target_accept_prob": 0.8}, (ValueError, "not both")),
    ({"inverse_mass_matrix": np.ones(3), "preconditioner": "laplace"}, (ValueError, "not both")),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kwargs, refused", NUMPYRO_NAMES)
def test_numpyro_names_accepted_or_refused(name, kwargs, refused):
    factory, _ = KERNELS[name]
    if refused is None:
        factory(model=gaussian3, **kwargs)
    else:
        with pytest.raises(refused[0], match=refused[1]):
            factory(model=gaussian3, **kwargs)


def test_numpyro_names_take_effect():
    """NumPyro's spellings set what ours set; the given inverse mass matrix is the (fixed)
    preconditioner; an unknown extra field names the fields there are."""
    factory, _ = KERNELS["RandomizedMidpoint"]
    cov = np.array([1.0, 4.0, 9.0])
    kernel = factory(
        model=gaussian3, target_accept_prob=0.9, adapt_mass_matrix=False, inverse_mass_matrix=cov
    )
    mcmc = MCMC(kernel, num_warmup=20, num_samples=5, progress_bar=False)
    mcmc.run(jax.random.key(0))
    assert kernel._target_accept == 0.9
    np.testing.assert_allclose(mcmc.last_state.adapt_state.precond.scale, np.sqrt(cov))
    with pytest.raises(KeyError, match="no extra field 'accept_prob'.*num_grad_evals"):
        mcmc.run(jax.random.key(0), extra_fields=("accept_prob",))
    with pytest.raises(ValueError, match="inverse_mass_matrix has shape"):
        MCMC(
            factory(model=gaussian3, inverse_mass_matrix=np.ones(2)),
            num_warmup=2,
            num_samples=2,
            progress_bar=False,
        ).run(jax.random.key(0))


# The change-point model of NumPyro's test_change_point_x64 (Bayesian Methods for Hackers): the
# rate jumps at tau * T, so the density is a step function of tau (zero gradient in tau).
COUNTS = np.array(
    [13, 24, 8, 24, 7, 35, 14, 11, 15, 11, 22, 22, 11, 57, 11, 19, 29, 6, 19, 12, 22, 12, 18]
    + [72, 32, 9, 7, 13, 19, 23, 27, 20, 6, 17, 13, 10, 14, 6, 16, 15, 7, 2, 15, 15, 19, 70]
    + [49, 7, 53, 22, 21, 31, 19, 11, 1, 20, 12, 35, 17, 23, 17, 4, 2, 31, 30, 13, 27, 0, 39]
    + [37, 5, 14, 13, 22]
)


def change_point_model(data):
    alpha = 1 / jnp.mean(data.astype(np.float32))
    lambda1 = numpyro.sample("lambda1", dist.Exponential(alpha))
    lambda2 = numpyro.sample("lambda2", dist.Exponential(alpha))
    tau = numpyro.sample("tau", dist.Uniform(0, 1))
    rate = jnp.where(jnp.arange(len(data)) < tau * len(data), lambda1, lambda2)
    numpyro.sample("obs", dist.Poisson(rate), obs=data)


def exact_change_point() -> np.ndarray:
    """P(floor(tau T) = m), m = 0..T-1: the rates are conjugate given the split k = m + 1 (the
    first k counts have rate lambda1), each split has prior mass 1/T."""
    from scipy.special import gammaln

    T, alpha = len(COUNTS), 1 / np.mean(COUNTS.astype(np.float32))
    k = np.arange(1, T + 1)
    s1 = np.cumsum(COUNTS)
    s2 = COUNTS.sum() - s1
    logp = gammaln(s1 + 1) - (s1 + 1) * np.log(alpha + k)
    logp += gammaln(s2 + 1) - (s2 + 1) * np.log(alpha + T - k)
    p = np.exp(logp - logp.max())
    return p / p.sum()


def change_point_tv(mcmc) -> float:
    m = (np.asarray(mcmc.get_samples()["tau"]) * len(COUNTS)).astype(int)
    freq = np.bincount(m, minlength=len(COUNTS))[: len(COUNTS)] / m.size
    return 0.5 * np.abs(freq - exact_change_point()).sum()


@pytest.mark.parametrize("name", ["RandomizedMidpoint", "MultALMC", "MultCDiff"])
def test_unadjusted_kernels_warn_on_the_change_point(name):
    """Gradient-only kernels cannot see the jump in tau (RandomizedMidpoint's tau follows its
    prior: the mode of floor(tau T) was 58 where the exact posterior has 44 at P = 0.43): they
    must say so (scoresample.adapt.smoothness). The smooth eight schools must not warn. At
    defaults (the test's small settings leave warmup's draws outside the typical set)."""
    factory = getattr(scoresample, name)
    mcmc = MCMC(
        factory(model=change_point_model),
        num_warmup=200,
        num_samples=10,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    with pytest.warns(NonSmoothDensityWarning, match="seems to jump"):
        mcmc.run(jax.random.key(0), COUNTS)
    if name == "MultALMC":  # the smooth check: MultCDiff runs the same multiscale probe path
        return
    smooth = MCMC(
        factory(model=eight_schools_model),
        num_warmup=200,
        num_samples=10,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonSmoothDensityWarning)
        smooth.run(jax.random.key(0), EIGHT_SIGMA, y=EIGHT_Y)


@pytest.mark.parametrize(
    "name, chains, warmup, draws", [("CMCD", 64, 100, 50), ("RDMC", 4, 300, 100)]
)
def test_density_using_kernels_get_the_change_point(name, chains, warmup, draws):
    """Kernels that weigh or test moves by densities see the jump: floor(tau T) against its exact
    posterior (P(44) = 0.433, P(43) = 0.355, P(42) = 0.126), at default settings. Bound: with
    ~200 effective draws the expected total variation from Monte Carlo error alone is about
    0.05 (sum over the top four values of sd * sqrt(2 / pi) / 2); 0.2 is four times that, and
    tau following its prior gives 0.95 (measured: CMCD 0.095, RDMC 0.054, seed 0; CMCD with 16
    particles and 200 + 200 iterations: 0.70, a population too small for this posterior)."""
    mcmc = MCMC(
        getattr(scoresample, name)(change_point_model),
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonSmoothDensityWarning)
        mcmc.run(jax.random.key(0), COUNTS)
    assert change_point_tv(mcmc) < 0.2
