"""RMP maths and its BlackJAX-style API."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scoresample
from scoresample.samplers import rmp


def run_chains(alg, init_position, num_chains, num_iters, seed=0):
    keys = jax.random.split(jax.random.key(seed), num_chains)
    state = jax.vmap(alg.init)(
        jnp.broadcast_to(init_position, (num_chains,) + init_position.shape), keys
    )

    def one(state, key):
        state, info = jax.vmap(alg.step)(jax.random.split(key, num_chains), state)
        return state, (state.position, info)

    _, (xs, infos) = jax.lax.scan(one, state, jax.random.split(jax.random.key(seed + 1), num_iters))
    return np.asarray(xs), infos


@pytest.mark.parametrize("variant,h", [("kinetic", 0.5), ("overdamped", 0.1)])
def test_stationary_moments_unit_gaussian(variant, h):
    # 1000 chains × 40 draws after 10 burn-in; draws 5 steps apart are nearly independent.
    ld = lambda x: -0.5 * jnp.sum(x**2)
    alg = scoresample.rmp(ld, step_size=h, num_steps=5, variant=variant)
    xs, infos = run_chains(alg, jnp.zeros(4), 1000, 50)
    draws = xs[10:].reshape(-1, 4)
    n_eff = draws.shape[0] / 4  # conservative: autocorrelation time ≤ 4 draws
    np.testing.assert_allclose(draws.mean(0), 0.0, atol=4 / np.sqrt(n_eff))
    # The randomized midpoint's variance bias is O(h²)-small here: within 3% of 1.
    np.testing.assert_allclose(draws.std(0), 1.0, atol=0.03)
    assert int(infos.num_grad_evals[0, 0]) == 10  # 2 gradients per step


def test_kinetic_bias_shrinks_with_step_size():
    # Unadjusted: the stationary variance bias on a stiff 1-D Gaussian (sd 0.2) must shrink with h.
    ld = lambda x: -0.5 * jnp.sum((x / 0.2) ** 2)
    errs = []
    for h in [0.2, 0.05]:
        alg = scoresample.rmp(ld, step_size=h, num_steps=10, friction=10.0)
        xs, _ = run_chains(alg, jnp.zeros(1), 2000, 30)
        errs.append(abs(xs[10:].std() / 0.2 - 1))
    assert errs[1] < errs[0] + 0.01


def test_pytree_position_and_top_level_api():
    ld = lambda p: -0.5 * (jnp.sum(p["a"] ** 2) + p["b"] ** 2)
    alg = scoresample.rmp(ld, step_size=0.3, num_steps=3)
    state = alg.init({"a": jnp.ones(2), "b": jnp.array(0.5)}, jax.random.key(0))
    state, info = alg.step(jax.random.key(1), state)
    assert set(state.position) == {"a", "b"} and state.position["a"].shape == (2,)
    assert rmp.init is scoresample.rmp.init and callable(scoresample.rmp.build_kernel("kinetic"))
    assert not bool(info.diverging)


def test_nan_region_reverses_the_velocity():
    """A step that meets the NaN region is undone and the velocity reversed; other steps of the
    same call go on, and no position ever lies in the region."""
    ld = lambda x: jnp.where(x[0] > 0.5, jnp.nan, -0.5 * jnp.sum(x**2))
    one = scoresample.rmp(ld, step_size=2.0, num_steps=1)
    state = one.init(jnp.array([0.4, 0.0]))._replace(velocity=jnp.array([5.0, 0.0]))
    new, info = one.step(jax.random.key(0), state)
    assert bool(info.diverging) and int(info.num_reflected) == 1
    np.testing.assert_array_equal(new.position, state.position)
    np.testing.assert_array_equal(new.velocity, -state.velocity)

    alg = scoresample.rmp(ld, step_size=2.0, num_steps=20)
    state = alg.init(jnp.array([0.4, 0.0]), jax.random.key(0))
    reflected = 0
    for i in range(20):
        state, info = alg.step(jax.random.key(i), state)
        reflected += int(info.num_reflected)
        assert bool(info.diverging) == (int(info.num_reflected) > 0)
        assert np.all(np.isfinite(state.position)) and state.position[0] <= 0.5
    assert reflected > 0


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"step_size": -1.0}, "step_size"),
        ({"step_size": 0.1, "friction": 0.0}, "friction"),
        ({"step_size": 0.1, "variant": "nope"}, "variant"),
        ({"step_size": 0.1, "num_steps": 0}, "num_steps"),
    ],
)
def test_invalid_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        scoresample.rmp(lambda x: -jnp.sum(x**2), **kwargs)
