"""Numerical building blocks shared by the samplers: schedules, integrators, Brownian integrals."""

from scoresample.diffusion.integrators import (
    kinetic_brownian_integrals,
    leapfrog_energy_error,
    one_minus_exp_neg,
    overdamped_brownian_pair,
)

__all__ = [
    "kinetic_brownian_integrals",
    "leapfrog_energy_error",
    "one_minus_exp_neg",
    "overdamped_brownian_pair",
]

from scoresample.diffusion import ou  # noqa: E402

__all__ += ["ou"]

from scoresample.diffusion import paths, skrock  # noqa: E402

__all__ += ["paths", "skrock"]
