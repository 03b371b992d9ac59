"""RDMC: its BlackJAX-style API and, through MCMC, targets with exact or reference answers.

Tolerances. RDMC draws are independent (one reverse trajectory per draw), so with n draws a mode
weight w has MC sd sqrt(w(1-w)/n): 2400 draws give 0.010 for w = 0.4 (the 0.03 bound is 3 sd
with the measured bias of 0.02-0.025 on the four-mode mixture inside); 800 draws give 0.017 for
w = 1/3 (0.05 bound; measured error 0.011). Eight schools: 600 draws, MC sd of a mean 0.04 sd,
of an sd ≈ 3-6% (tau is skewed); measured max |z| 0.07 and sd errors ≤ 11% at K = 24 steps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import NUTS

import scoresample
from scoresample import diagnostics as D
from scoresample.bench import make_mcmc
from scoresample.samplers import rdmc
from scoresample.targets import (
    eight_schools,
    eight_schools_constrained,
    two_mode_mixture,
    unequal_mixture_2d,
)

SMALL = dict(num_steps=8, num_is_samples=64, num_chains=2, num_inner_steps=4)


def test_blackjax_api_gaussian_moments_and_exact_costs():
    # 400 independent draws of N(0, I_3): MC sd of a mean 0.05, of an sd 0.035; the default
    # K = 32 steps over-disperse by ~4% (8 steps: +25%, measured).
    alg = scoresample.rdmc(lambda x: -0.5 * jnp.sum(x**2), **{**SMALL, "num_steps": 32})
    n = 400
    state = jax.vmap(alg.init)(jnp.zeros((n, 3)))
    state, info = jax.jit(jax.vmap(alg.step))(jax.random.split(jax.random.key(0), n), state)
    x = np.asarray(state.position)
    assert np.all(np.abs(x.mean(0)) < 0.2) and np.all(np.abs(x.std(0) - 1) < 0.15)
    np.testing.assert_allclose(state.logdensity, -0.5 * np.sum(x**2, -1), rtol=1e-4, atol=1e-4)
    # 33 estimator calls (32 steps + the final denoising draw) × (M densities, n (J + 1) grads).
    assert int(info.num_grad_evals[0]) == 33 * 2 * 5
    assert int(info.num_density_evals[0]) == 33 * 64
    assert not np.any(np.asarray(info.diverging))
    assert state.step_sizes.shape == (n, 33)
    assert rdmc.init is scoresample.rdmc.init and callable(scoresample.rdmc.build_kernel())


def test_pytree_position_and_outputs():
    ld = lambda p: -0.5 * (jnp.sum(p["a"] ** 2) + p["b"] ** 2)
    for output in ("sample", "mean", "noisy"):
        alg = scoresample.rdmc(ld, output=output, **SMALL)
        state = alg.init({"a": jnp.ones(2), "b": jnp.array(0.5)})
        new, info = alg.step(jax.random.key(1), state)
        assert set(new.position) == {"a", "b"} and new.position["a"].shape == (2,)
        assert not bool(info.diverging)
        extra = 0 if output == "sample" else 1
        calls = 8 if output == "noisy" else 9
        assert int(info.num_density_evals) == calls * 64 + extra


def test_gradient_free_estimator_counts_no_gradients():
    alg = scoresample.rdmc(
        lambda x: -0.5 * jnp.sum(x**2), estimator="importance", num_steps=6, num_samples=32
    )
    state, info = alg.step(jax.random.key(0), alg.init(jnp.zeros(2)))
    assert int(info.num_grad_evals) == 0 and int(info.num_density_evals) == 7 * 32


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"T": -1.0}, "T"),
        ({"num_steps": 0}, "num_steps"),
        ({"s_min": 4.0}, "s_min"),
        ({"grid": "log"}, "grid"),
        ({"estimator": "kalman"}, "estimator"),
        ({"output": "median"}, "output"),
        ({"num_chains": 0}, "num_chains"),
        ({"method": "hmc"}, "method"),
        ({"form": "tweedie"}, "form"),
        ({"target_accept": 1.0}, "target_accept"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_invalid_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        scoresample.rdmc(lambda x: -jnp.sum(x**2), **kwargs)


def run(kernel, target, num_chains, num_warmup, num_samples, seed=0):
    mcmc = make_mcmc(kernel, num_chains, num_warmup, num_samples)
    mcmc.run(jax.random.key(seed), *target.model_args, extra_fields=("diverging",))
    return mcmc


@pytest.mark.slow
def test_unequal_four_mode_mixture_weights_where_nuts_fails():
    t = unequal_mixture_2d()
    mcmc = run(scoresample.RDMC(t.model), t, 8, 100, 300)
    w = D.mode_weights(np.asarray(mcmc.get_samples()["x"]), t.component_means)
    assert np.max(np.abs(w - t.weights)) < 0.03, w
    nuts = run(NUTS(t.model), t, 4, 300, 300)
    w_nuts = D.mode_weights(np.asarray(nuts.get_samples()["x"]), t.component_means)
    assert np.max(np.abs(w_nuts - t.weights)) > 0.1, w_nuts  # each NUTS chain stays in one mode


@pytest.mark.slow
def test_two_mode_mixture_d8():
    t = two_mode_mixture(8)
    mcmc = run(scoresample.RDMC(t.model), t, 8, 100, 100)
    w = D.mode_weights(np.asarray(mcmc.get_samples()["x"]), t.component_means)
    assert np.max(np.abs(w - t.weights)) < 0.05, w


@pytest.mark.slow
def test_eight_schools_against_posteriordb():
    t = eight_schools()
    mcmc = run(scoresample.RDMC(t.model), t, 4, 100, 150)
    draws = eight_schools_constrained(mcmc.get_samples())
    for name, ref in t.extra["reference"].items():
        v = draws[name]
        z = abs(v.mean() - ref["mean"]) / ref["sd"]
        rel_sd = abs(v.std() / ref["sd"] - 1)
        assert z < 0.15, (name, z)
        assert rel_sd < 0.15, (name, rel_sd)
