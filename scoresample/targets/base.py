"""A benchmark target: a log density on R^d, a NumPyro model for it, and what is known exactly."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np


@dataclasses.dataclass
class Target:
    """name; dim; logdensity_fn on flat arrays (d,); model + model_args for NumPyro (one latent
    site ``site`` holding the flat vector, unless the model is a real posterior); what is known:
    mean, sd (per coordinate), cov, sample(rng, n) for exact draws, log_z, mode weights."""

    name: str
    dim: int
    logdensity_fn: Callable
    model: Callable
    model_args: tuple = ()
    site: str = "x"
    mean: np.ndarray | None = None
    sd: np.ndarray | None = None
    cov: np.ndarray | None = None
    log_z: float | None = None
    sample: Callable | None = None
    weights: np.ndarray | None = None
    component_means: np.ndarray | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    to_flat: Callable | None = None  # NumPyro samples (dict) -> flat unconstrained draws (..., d)

    def flat_draws(self, samples: dict) -> np.ndarray:
        """The draws as flat unconstrained vectors, in the order of ``logdensity_fn``."""
        if self.to_flat is not None:
            return np.asarray(self.to_flat(samples))
        return np.asarray(samples[self.site])
