"""The list of NumPyro kernels the contract tests run over. Adding a kernel = one entry here.

Each entry: name -> (factory(model=None, potential_fn=None, **kw) with small, fast settings,
is_population). Population kernels need chain_method="vectorized".
"""

from scoresample import EnsembleDiffusion, RandomizedMidpoint

KERNELS = {
    "EnsembleDiffusion": (
        lambda model=None, potential_fn=None, **kw: EnsembleDiffusion(
            model, potential_fn, **{"num_steps": 8, "num_samples": 2, **kw}
        ),
        True,
    ),
    "RandomizedMidpoint": (
        lambda model=None, potential_fn=None, **kw: RandomizedMidpoint(
            model, potential_fn, **{"num_steps": 5, **kw}
        ),
        False,
    ),
}

# Invalid hyper-parameters each kernel must reject at construction: name -> [(kwargs, param)].
INVALID_HYPERPARAMETERS = {
    "EnsembleDiffusion": [
        ({"num_steps": 0}, "num_steps"),
        ({"num_samples": 2.5}, "num_samples"),
        ({"estimator": "kalman"}, "estimator"),
        ({"warmup_widening": 0.5}, "warmup_widening"),
        ({"inflation": -1.0}, "inflation"),
    ],
    "RandomizedMidpoint": [
        ({"step_size": -0.1}, "step_size"),
        ({"friction": 0.0}, "friction"),
        ({"variant": "sideways"}, "variant"),
        ({"num_steps": 0}, "num_steps"),
        ({"target_accept": 1.5}, "target_accept"),
    ],
}

# Controlled Monte Carlo diffusions (issue 4): a short population sweep.
from scoresample import CMCD  # noqa: E402

KERNELS["CMCD"] = (
    lambda model=None, potential_fn=None, **kw: CMCD(
        model, potential_fn, **{"num_steps": 8, "num_blocks": 2, "num_mala_steps": 1, **kw}
    ),
    True,
)
INVALID_HYPERPARAMETERS["CMCD"] = [
    ({"num_steps": 0}, "num_steps"),
    ({"num_blocks": 9, "num_steps": 8}, "num_blocks"),
    ({"ess_threshold": 1.5}, "ess_threshold"),
    ({"schedule": "sideways"}, "schedule"),
    ({"control": "neural"}, "control"),
    ({"num_mala_steps": -1}, "num_mala_steps"),
    ({"control": "learned", "control_kwargs": {"learning_rate": 0.0}}, "learning_rate"),
]

# Reverse diffusion Monte Carlo (issue 3): a short trajectory, tiny inner sizes, per chain.
from scoresample import RDMC  # noqa: E402

_RDMC_SMALL = {"num_steps": 6, "num_is_samples": 32, "num_inner_chains": 2, "inner_steps": 2}
KERNELS["RDMC"] = (
    lambda model=None, potential_fn=None, **kw: RDMC(model, potential_fn, **{**_RDMC_SMALL, **kw}),
    False,
)
INVALID_HYPERPARAMETERS["RDMC"] = [
    ({"T": 0.0}, "T"),
    ({"num_steps": 0}, "num_steps"),
    ({"s_min": 5.0}, "s_min"),
    ({"grid": "log"}, "grid"),
    ({"estimator": "kalman"}, "estimator"),
    ({"output": "median"}, "output"),
    ({"inner_steps": 0}, "num_inner_steps"),
    ({"inner_method": "hmc"}, "method"),
    ({"score_form": "tweedie"}, "form"),
    ({"wide_fraction": 1.5}, "wide_fraction"),
    ({"step_size": -0.1}, "step_size"),
]

# Controlled Monte Carlo diffusions (issue 4): a short population sweep.
from scoresample import CMCD  # noqa: E402

KERNELS["CMCD"] = (
    lambda model=None, potential_fn=None, **kw: CMCD(
        model, potential_fn, **{"num_steps": 8, "num_blocks": 2, "num_mala_steps": 1, **kw}
    ),
    True,
)
INVALID_HYPERPARAMETERS["CMCD"] = [
    ({"num_steps": 0}, "num_steps"),
    ({"num_blocks": 9, "num_steps": 8}, "num_blocks"),
    ({"ess_threshold": 1.5}, "ess_threshold"),
    ({"schedule": "sideways"}, "schedule"),
    ({"control": "neural"}, "control"),
    ({"num_mala_steps": -1}, "num_mala_steps"),
    ({"control": "learned", "control_kwargs": {"learning_rate": 0.0}}, "learning_rate"),
]
