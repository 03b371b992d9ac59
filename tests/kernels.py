"""The list of NumPyro kernels the contract tests run over. Adding a kernel = one entry here.

Each entry: name -> (factory(model=None, potential_fn=None, **kw) with small, fast settings,
is_population). Population kernels need chain_method="vectorized".
"""

from scoresample import RandomizedMidpoint

KERNELS = {
    "RandomizedMidpoint": (
        lambda model=None, potential_fn=None, **kw: RandomizedMidpoint(
            model, potential_fn, **{"num_steps": 5, **kw}
        ),
        False,
    ),
}

# Invalid hyper-parameters each kernel must reject at construction: name -> [(kwargs, param)].
INVALID_HYPERPARAMETERS = {
    "RandomizedMidpoint": [
        ({"step_size": -0.1}, "step_size"),
        ({"friction": 0.0}, "friction"),
        ({"variant": "sideways"}, "variant"),
        ({"num_steps": 0}, "num_steps"),
        ({"target_accept": 1.5}, "target_accept"),
    ],
}
