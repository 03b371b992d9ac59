"""A multimodal posterior where NUTS gets stuck and RDMC / CMCD recover the mode weights.

Four well-separated Gaussian modes (barriers ≈ 50 nats) with weights 0.1, 0.2, 0.3, 0.4.

    python examples/multimodal.py [--small]
"""

import argparse

import jax
import numpy as np
from numpyro.infer import MCMC, NUTS

import scoresample
from scoresample.diagnostics import mode_weights
from scoresample.targets import unequal_mixture_2d


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--small", action="store_true")
    a = p.parse_args(argv)
    t = unequal_mixture_2d()
    runs = {
        "NUTS": (NUTS(t.model), 4, 200, 500),
        "RDMC": (scoresample.RDMC(t.model), 8, 100, 100 if a.small else 500),
        "CMCD": (scoresample.CMCD(t.model), 512 if a.small else 2048, 20, 2),
    }
    weights = {}
    for name, (kernel, chains, warmup, samples) in runs.items():
        mcmc = MCMC(
            kernel,
            num_warmup=warmup,
            num_samples=samples,
            num_chains=chains,
            chain_method="vectorized",
            progress_bar=False,
        )
        mcmc.run(jax.random.key(1))
        w = mode_weights(np.asarray(mcmc.get_samples()["x"]), t.component_means)
        weights[name] = w
        print(f"{name:>5}: mode weights {np.round(w, 3)} (truth {t.weights})")
    return weights


if __name__ == "__main__":
    main()
