"""Benchmark targets with exact (or reference) answers, as log densities and NumPyro models."""

from scoresample.targets.base import Target
from scoresample.targets.funnel import funnel
from scoresample.targets.gaussians import (
    anisotropic_gaussian,
    ill_conditioned_gaussian,
    isotropic_gaussian,
)
from scoresample.targets.manywell import manywell
from scoresample.targets.mixtures import gaussian_mixture, two_mode_mixture, unequal_mixture_2d
from scoresample.targets.posteriors import (
    eight_schools,
    eight_schools_constrained,
    eight_schools_model,
    german_credit,
    german_credit_model,
)

__all__ = [
    "Target",
    "anisotropic_gaussian",
    "eight_schools",
    "eight_schools_constrained",
    "eight_schools_model",
    "funnel",
    "gaussian_mixture",
    "german_credit",
    "german_credit_model",
    "ill_conditioned_gaussian",
    "isotropic_gaussian",
    "manywell",
    "two_mode_mixture",
    "unequal_mixture_2d",
]

from scoresample.targets.conjugate import ConjugateModel, beta_binomial, normal_normal  # noqa: E402

__all__ += ["ConjugateModel", "beta_binomial", "normal_normal"]

from scoresample.targets.heavy_tailed import student_t  # noqa: E402

__all__ += ["student_t"]

from scoresample.targets.priors import (  # noqa: E402
    centred_eight_schools_model,
    forty_mode_mixture_prior,
    four_mode_mixture_prior,
    hierarchical_funnel,
    hierarchical_funnel_model,
    manywell_prior,
    with_gaussian_prior,
)

__all__ += [
    "centred_eight_schools_model",
    "forty_mode_mixture_prior",
    "four_mode_mixture_prior",
    "hierarchical_funnel",
    "hierarchical_funnel_model",
    "manywell_prior",
    "with_gaussian_prior",
]
