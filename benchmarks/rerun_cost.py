"""Seconds per MCMC.run with the warmup start compiled once and kept (scoresample.infer.compiled).

RandomizedMidpoint at defaults on eight schools (2 vectorized chains, 100 + 100 iterations):
a new kernel and MCMC per round, then a second run of the same MCMC with new data of the same
shape, then the kernel's init alone. The first round compiles; later rounds reuse the start.

    nice python -m benchmarks.rerun_cost
"""

from __future__ import annotations

import time

import jax
import numpy as np
from numpyro.infer import MCMC

import scoresample
from scoresample.targets.posteriors import eight_schools_model

SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args, **kwargs))
    return time.perf_counter() - start


def run(mcmc, seed, y):
    mcmc.run(jax.random.key(seed), SIGMA, y=y)
    return mcmc.last_state


def main(rounds: int = 3) -> None:
    print("| round | new kernel + MCMC, run (s) | same MCMC, new data (s) | init alone (s) |")
    print("|---|---|---|---|")
    for r in range(rounds):
        kernel = scoresample.RandomizedMidpoint(eight_schools_model)
        mcmc = MCMC(
            kernel,
            num_warmup=100,
            num_samples=100,
            num_chains=2,
            chain_method="vectorized",
            progress_bar=False,
            jit_model_args=True,
        )
        first = timed(run, mcmc, r, Y)
        second = timed(run, mcmc, r + 10, Y + 1)
        keys = jax.random.split(jax.random.key(r), 2)
        init = timed(kernel.init, keys, 100, model_args=(SIGMA,), model_kwargs={"y": Y})
        print(f"| {r} | {first:.1f} | {second:.1f} | {init:.2f} |", flush=True)


if __name__ == "__main__":
    main()
