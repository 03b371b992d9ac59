"""The BlackJAX front on a target nobody whitened: rdMC after ``scoresample.window_adaptation``.

Target N(m, diag(s)²), m = (10, -5, 3), s = (5, 0.5, 2) (issue 17's). For each outer step count
K: warm up 32 vectorized chains for 60 iterations (pooled windows), then three seeds of 6 x 256
independent draws; prints the adapted reference scale / s and each seed's standardized mean
error and sd ratio. Also the single-chain warmup (60 iterations, Laplace start) for comparison.

    nice python -m benchmarks.window_adaptation
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

import scoresample

MEAN = jnp.array([10.0, -5.0, 3.0])
SD = jnp.array([5.0, 0.5, 2.0])


def logdensity(x):
    return -0.5 * jnp.sum(((x - MEAN) / SD) ** 2)


def draws(params, start, seed, num=6, chains=256):
    alg = scoresample.rdmc(logdensity, **params)
    state = jax.vmap(alg.init)(jnp.broadcast_to(start, (chains, 3)))
    step = jax.jit(jax.vmap(alg.step))
    out = []
    for i in range(num):
        keys = jax.random.split(jax.random.key(100 * seed + i + 2), chains)
        state, _ = step(keys, state)
        out.append(np.asarray(state.position))
    return np.concatenate(out)


def report(label, params, start):
    scale = np.asarray(params["reference_scale"]) / np.asarray(SD)
    print(f"{label}: reference_scale / s = {np.round(scale, 3)}")
    for seed in range(3):
        x = draws(params, start, seed)
        z = (x.mean(0) - np.asarray(MEAN)) / np.asarray(SD)
        print(
            f"  seed {seed}: mean error / s {np.round(z, 3)}, sd ratio {np.round(x.std(0) / SD, 3)}"
        )


def main():
    warnings.simplefilter("ignore")
    for k in (32, 64):
        warmup = scoresample.window_adaptation(scoresample.rdmc, logdensity, num_steps=k)
        (state, params), _ = warmup.run(
            jax.random.key(0), jnp.zeros((32, 3)), num_steps=60, num_chains=32
        )
        report(f"K = {k}, 32 chains", params, state.position[0])
    warmup = scoresample.window_adaptation(scoresample.rdmc, logdensity)
    (state, params), _ = warmup.run(jax.random.key(0), jnp.zeros(3), num_steps=60)
    report("K = 32, one chain", params, state.position)


if __name__ == "__main__":
    main()
