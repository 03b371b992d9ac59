"""β schedules and the geometric annealing path (scoresample.diffusion.annealing)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scoresample.diffusion import annealing as A


@pytest.mark.parametrize("name", A.SCHEDULES)
@pytest.mark.parametrize("num_steps", [1, 2, 17])
def test_schedules_run_from_zero_to_one_strictly(name, num_steps):
    b = A.make_schedule(name, num_steps)
    assert b.shape == (num_steps + 1,)
    assert b[0] == 0.0 and b[-1] == 1.0
    assert np.all(np.diff(b) > 0)
    np.testing.assert_array_equal(A.check_schedule(b), b)


def test_schedule_shapes():
    np.testing.assert_allclose(A.linear_schedule(4), [0, 0.25, 0.5, 0.75, 1.0])
    g = A.geometric_schedule(5, beta_min=1e-4)
    np.testing.assert_allclose(g[1:], [1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-12)
    c = A.cosine_schedule(10)
    np.testing.assert_allclose(c + c[::-1], 1.0, atol=1e-12)  # symmetric about the middle
    np.testing.assert_allclose(A.power_schedule(2, 3.0), [0, 0.125, 1.0])


@pytest.mark.parametrize(
    "call,param",
    [
        (lambda: A.linear_schedule(0), "num_steps"),
        (lambda: A.geometric_schedule(4, beta_min=0.0), "beta_min"),
        (lambda: A.power_schedule(4, power=-1.0), "power"),
        (lambda: A.make_schedule("sideways", 4), "schedule"),
        (lambda: A.check_schedule([0.0, 0.7, 0.5, 1.0]), "schedule"),
        (lambda: A.check_schedule([0.1, 1.0]), "schedule"),
    ],
)
def test_invalid_schedules_raise(call, param):
    with pytest.raises(ValueError, match=param):
        call()


def test_annealed_score_is_the_gradient_of_the_annealed_logdensity():
    log_target = lambda x: -jnp.sum(x**4) + jnp.sin(x[0])
    x = jnp.array([0.3, -1.2, 0.7])
    for beta in (0.0, 0.3, 1.0):
        f = lambda y, b=beta: A.annealed_logdensity(
            b, log_target(y), A.standard_normal_logdensity(y)
        )
        np.testing.assert_allclose(
            A.annealed_score(beta, jax.grad(log_target)(x), -x), jax.grad(f)(x), rtol=1e-5
        )


def test_standard_normal_logdensity_is_normalised():
    x = jnp.zeros((2, 3))
    np.testing.assert_allclose(A.standard_normal_logdensity(x), -1.5 * np.log(2 * np.pi), 1e-6)
