"""A model whose likelihood is not differentiable: NUTS cannot run it, the ensemble sampler can.

The likelihood comes from an "external simulator" (plain NumPy behind jax.pure_callback) that
reports how many of n noisy detectors fire: a step function of the parameter.

    python examples/gradient_free.py [--small]
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC

import scoresample

THRESHOLDS = np.linspace(-2.0, 2.0, 9)


def detector_loglik(theta, fired):
    """log P(fired pattern | theta): detector k fires with prob 0.9 if theta > threshold_k,
    else 0.1 — a step function of theta, computed outside JAX."""

    def host(theta, fired):
        theta = np.asarray(theta)
        above = (theta[..., None] > THRESHOLDS).astype(np.float64)
        p = 0.1 + 0.8 * above
        ll = (np.asarray(fired) * np.log(p) + (1 - np.asarray(fired)) * np.log1p(-p)).sum(-1)
        return ll.astype(np.float32)

    out = jax.ShapeDtypeStruct(jnp.shape(theta), jnp.float32)
    return jax.pure_callback(host, out, theta, fired, vmap_method="expand_dims")


def model(fired):
    theta = numpyro.sample("theta", dist.Normal(0.0, 2.0))
    numpyro.factor("detectors", detector_loglik(theta, fired))


def exact_posterior_mean(fired):
    grid = np.linspace(-10, 10, 20001)
    above = (grid[:, None] > THRESHOLDS).astype(float)
    p = 0.1 + 0.8 * above
    ll = (fired * np.log(p) + (1 - fired) * np.log1p(-p)).sum(-1) - grid**2 / 8
    w = np.exp(ll - ll.max())
    return float((grid * w).sum() / w.sum())


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--small", action="store_true")
    a = p.parse_args(argv)
    fired = jnp.asarray((0.7 > THRESHOLDS).astype(np.float32))  # data from theta = 0.7
    mcmc = MCMC(
        scoresample.EnsembleDiffusion(model),
        num_warmup=10,
        num_samples=4 if a.small else 10,
        num_chains=256 if a.small else 1024,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), fired, extra_fields=("num_grad_evals",))
    theta = np.asarray(mcmc.get_samples()["theta"])
    exact = exact_posterior_mean(np.asarray(fired))
    grads = int(np.sum(mcmc.get_extra_fields()["num_grad_evals"]))
    print(f"posterior mean {theta.mean():.3f} (exact {exact:.3f}); gradients used: {grads}")
    return theta.mean(), exact, grads


if __name__ == "__main__":
    main()
