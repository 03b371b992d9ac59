"""Thousands of vectorized chains: the GPU recipe.

One MCMC iteration of a diffusion kernel is a whole reverse trajectory, so draws are nearly
independent and you buy many of them with many chains. On a GPU, run with num_chains in the
thousands; with several GPUs the chains are split over all of them (shard_chains defaults to on
for multi-accelerator hosts). On CPU this script runs the same code with fewer chains.

    python examples/many_chains.py [--small] [--chains 4096]
"""

import argparse
import time

import jax
import numpy as np
from numpyro.infer import MCMC

import scoresample
from scoresample.diagnostics import mode_weights
from scoresample.targets import unequal_mixture_2d


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--small", action="store_true")
    p.add_argument("--chains", type=int, default=None)
    a = p.parse_args(argv)
    on_gpu = jax.devices()[0].platform != "cpu"
    chains = a.chains or (32 if a.small else (4096 if on_gpu else 256))
    t = unequal_mixture_2d()
    mcmc = MCMC(
        scoresample.RDMC(t.model),
        num_warmup=20,
        num_samples=4 if a.small else 20,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=not a.small,
    )
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(0))
    x = np.asarray(mcmc.get_samples()["x"])
    dt = time.perf_counter() - t0
    print(
        f"{chains} chains on {jax.devices()[0].platform}: {x.shape[0]} draws in {dt:.1f} s; "
        f"mode weights {np.round(mode_weights(x, t.component_means), 3)}"
    )
    return x.shape[0], dt


if __name__ == "__main__":
    main()
