"""The list of NumPyro kernels the contract tests run over. Adding a kernel = one entry here.

KERNELS: name -> (factory(model=None, potential_fn=None, **kw) with small, fast settings,
is_population). Population kernels need chain_method="vectorized".
INVALID_HYPERPARAMETERS: name -> [(kwargs, name of the parameter the error must mention)].
NOT_BITWISE_ACROSS_CHAIN_METHODS: kernels whose parallel and sequential runs agree only in
distribution: the multiscale fast ensemble takes discrete decisions (resampling, dropping an
unstable fast chain) that amplify the last-bit differences between the pmap- and jit-compiled
programs, so the same key gives different (equally valid) chains.
"""

from scoresample import CMCD, RDMC, EnsembleDiffusion, MultALMC, MultCDiff, RandomizedMidpoint

KERNELS = {}
INVALID_HYPERPARAMETERS = {}


def register(name, cls, small_settings, is_population, invalid):
    def factory(model=None, potential_fn=None, **kw):
        return cls(model, potential_fn, **{**small_settings, **kw})

    KERNELS[name] = (factory, is_population)
    INVALID_HYPERPARAMETERS[name] = invalid


register(
    "RandomizedMidpoint",
    RandomizedMidpoint,
    {"num_steps": 5},
    False,
    [
        ({"step_size": -0.1}, "step_size"),
        ({"friction": 0.0}, "friction"),
        ({"variant": "sideways"}, "variant"),
        ({"num_steps": 0}, "num_steps"),
        ({"target_accept": 1.5}, "target_accept"),
    ],
)
# Reverse diffusion Monte Carlo (issue 3): a short trajectory, tiny inner sizes, per chain.
register(
    "RDMC",
    RDMC,
    {"num_steps": 6, "num_is_samples": 32, "num_inner_chains": 2, "inner_steps": 2},
    False,
    [
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
    ],
)
# Gradient-free ensemble (issue 5): the chains are the population.
register(
    "EnsembleDiffusion",
    EnsembleDiffusion,
    {"num_steps": 8, "num_samples": 2},
    True,
    [
        ({"num_steps": 0}, "num_steps"),
        ({"num_samples": 2.5}, "num_samples"),
        ({"estimator": "kalman"}, "estimator"),
        ({"warmup_widening": 0.5}, "warmup_widening"),
        ({"inflation": -1.0}, "inflation"),
    ],
)
# Controlled Monte Carlo diffusions (issue 4): a short population sweep.
register(
    "CMCD",
    CMCD,
    {"num_steps": 8, "num_blocks": 2, "num_mala_steps": 1},
    True,
    [
        ({"num_steps": 0}, "num_steps"),
        ({"num_blocks": 9, "num_steps": 8}, "num_blocks"),
        ({"ess_threshold": 1.5}, "ess_threshold"),
        ({"schedule": "sideways"}, "schedule"),
        ({"control": "neural"}, "control"),
        ({"num_mala_steps": -1}, "num_mala_steps"),
        ({"control": "learned", "control_kwargs": {"learning_rate": 0.0}}, "learning_rate"),
    ],
)
# Multiscale averaging (issue 6): a short trajectory, two fast chains, a short Gaussian fit.
_MULTISCALE_SMALL = {
    "num_steps": 10,
    "fast_chains": 2,
    "newton_steps": 1,
    "num_final_steps": 2,
    "gaussian_fit_steps": 50,
}
_MULTISCALE_INVALID = [
    ({"num_steps": 0}, "num_steps"),
    ({"eps": -1.0}, "eps"),
    ({"fast_chains": 0}, "fast_chains"),
    ({"stages": 0}, "stages"),
    ({"lambda_min": 0.7}, "lambda_min"),
    ({"init": "map"}, "init"),
    ({"step_size": -0.1}, "step_size"),
]
NOT_BITWISE_ACROSS_CHAIN_METHODS = {"MultALMC", "MultCDiff"}
register("MultALMC", MultALMC, _MULTISCALE_SMALL, False, _MULTISCALE_INVALID)
register("MultCDiff", MultCDiff, _MULTISCALE_SMALL, False, _MULTISCALE_INVALID)
