"""The warmup's jump test (scoresample.adapt.smoothness) on smooth and discontinuous posteriors.

For each kernel and model: run MCMC at defaults (4 vectorized chains, 300 warmup + 200 draws),
and print the ratio R of the probe rejections at step and half step that warmup collected, with
whether the kernel warned. Smooth densities give R near 8, jumps near 2.

    nice python -m benchmarks.smoothness --kernels RandomizedMidpoint MultALMC MultCDiff
"""

from __future__ import annotations

import argparse
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC

import scoresample
from scoresample.adapt.smoothness import NonSmoothDensityWarning, rejection_ratio
from scoresample.targets.posteriors import (
    eight_schools_model,
    german_credit_data,
    german_credit_model,
)
from scoresample.targets.priors import centred_eight_schools_model, hierarchical_funnel_model
from tests.test_numpyro_edge_models import COUNTS, change_point_model

SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])


def floor_model():
    x = numpyro.sample("x", dist.Normal(0.0, 3.0))
    numpyro.factor("step", -0.5 * jnp.floor(x) ** 2)


def student_model():
    numpyro.sample("x", dist.StudentT(3.0, 0.0, 1.0).expand([5]))


def models():
    x, y = german_credit_data()
    return {
        "change_point": (change_point_model, (COUNTS,), {}),
        "floor": (floor_model, (), {}),
        "eight_schools": (eight_schools_model, (SIGMA,), {"y": Y}),
        "eight_schools_centred": (centred_eight_schools_model, (SIGMA,), {"y": Y}),
        "funnel10": (hierarchical_funnel_model, (10,), {}),
        "german_credit": (german_credit_model, (x,), {"y": y}),
        "student_t5": (student_model, (), {}),
    }


def measure(kernel: str, model, args, kwargs, seed: int = 0):
    mcmc = MCMC(
        getattr(scoresample, kernel)(model),
        num_warmup=300,
        num_samples=200,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mcmc.run(jax.random.key(seed), *args, **kwargs)
    warned = any(issubclass(w.category, NonSmoothDensityWarning) for w in caught)
    sm = jax.tree.map(lambda a: a[0], mcmc.last_state.adapt_state.smoothness)
    return float(rejection_ratio(sm)), float(sm.rejection_half / sm.count), warned


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernels", nargs="+", default=["RandomizedMidpoint", "MultALMC"])
    p.add_argument("--models", nargs="+", default=sorted(models()))
    args = p.parse_args(argv)
    table = models()
    print("| kernel | model | R | mean rejection at half step | warned |")
    print("|---|---|---|---|---|")
    for kernel in args.kernels:
        for name in args.models:
            ratio, half, warned = measure(kernel, *table[name])
            print(f"| {kernel} | {name} | {ratio:.2f} | {half:.4f} | {warned} |", flush=True)


if __name__ == "__main__":
    main()
