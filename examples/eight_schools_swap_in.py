"""NUTS swap-in: the same NumPyro model, sampled by NUTS and by scoresample kernels, with ArviZ.

python examples/eight_schools_swap_in.py [--small] [--out DIR]
"""

import argparse
from pathlib import Path

import arviz as az
import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

import scoresample  # noqa: E402
from scoresample.targets import eight_schools_model  # noqa: E402
from scoresample.targets.posteriors import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--small", action="store_true")
    p.add_argument("--out", default="examples_out")
    a = p.parse_args(argv)
    warmup, samples = (100, 100) if a.small else (500, 1000)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, kernel in [
        ("NUTS", NUTS(eight_schools_model)),
        ("RandomizedMidpoint", scoresample.RandomizedMidpoint(eight_schools_model)),
        ("RDMC", scoresample.RDMC(eight_schools_model)),
    ]:
        # The only line that changes between samplers is the kernel.
        mcmc = MCMC(
            kernel,
            num_warmup=warmup,
            num_samples=samples,
            num_chains=4,
            chain_method="vectorized",
            progress_bar=False,
        )
        mcmc.run(
            jax.random.key(0), EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y, extra_fields=("diverging",)
        )
        print(f"== {name}")
        mcmc.print_summary(exclude_deterministic=False)
        idata = az.from_numpyro(mcmc)
        results[name] = idata
        az.plot_trace(idata, var_names=["mu", "tau"])
        plt.savefig(out / f"eight_schools_trace_{name}.png", dpi=80)
        plt.close("all")
    summary = {
        k: az.summary(v, var_names=["mu", "tau"])[["mean", "sd", "r_hat"]]
        for k, v in results.items()
    }
    for k, v in summary.items():
        print(k, "\n", v)
    return summary


if __name__ == "__main__":
    main()
