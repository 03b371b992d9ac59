"""scoresample: training-free score-based samplers for Bayesian inference in JAX.

NumPyro kernels, drop-ins for ``numpyro.infer.NUTS`` (run with ``numpyro.infer.MCMC``):

    RandomizedMidpoint  randomized-midpoint Langevin Monte Carlo; per-chain, like NUTS
    RDMC                reverse diffusion Monte Carlo: one reverse OU trajectory per draw
    MultALMC            multiscale annealed Langevin: one annealing trajectory per draw
    MultCDiff           multiscale reverse diffusion: one reverse OU trajectory per draw
    EnsembleDiffusion   gradient-free Föllmer sampling; the chains are the particles
    CMCD                controlled Monte Carlo diffusions; the chains are the particles
    ScoreSampleKernel   the base class the kernels above share

BlackJAX-style algorithms (``scoresample.rmp(logdensity_fn, ...)`` gives a
``blackjax.base.SamplingAlgorithm``; ``.init`` and ``.build_kernel`` as in ``blackjax``):

    window_adaptation   the NumPyro kernels' warmup for these algorithms, BlackJAX style
    rmp                 randomized-midpoint Langevin (RandomizedMidpoint's sampler)
    rdmc                reverse diffusion Monte Carlo (RDMC's)
    multalmc            multiscale annealed Langevin (MultALMC's)
    multcdiff           multiscale reverse diffusion (MultCDiff's)
    ensemble            gradient-free ensemble Föllmer sampling (EnsembleDiffusion's)
    cmcd                controlled Monte Carlo diffusions (CMCD's)

After a run:

    check               inspect a finished MCMC run; warns SuspectRunWarning if it looks wrong
    SuspectRunWarning   the warning ``check`` gives
    population_summary  per-sweep diagnostics of CMCD / EnsembleDiffusion runs (any sweep count)
    print_population_summary  the same, printed (NumPyro's print_summary with sweeps as chains)
    run_checkpointed    run an MCMC in saved segments, resumable after a crash

Command line: ``scoresample demo``, ``scoresample bench``, ``scoresample api`` (see ``--help``).
"""

from scoresample.infer import RandomizedMidpoint, ScoreSampleKernel
from scoresample.infer.ensemble import EnsembleDiffusion
from scoresample.samplers.ensemble import ensemble
from scoresample.samplers.rmp import rmp

__version__ = "0.1.0"

__all__ = ["EnsembleDiffusion", "ensemble", "RandomizedMidpoint", "ScoreSampleKernel", "rmp"]

from scoresample.checkpoint import run_checkpointed  # noqa: E402

__all__ += ["run_checkpointed"]

from scoresample.infer.cmcd import CMCD  # noqa: E402
from scoresample.samplers.cmcd import cmcd  # noqa: E402

__all__ += ["CMCD", "cmcd"]

from scoresample.infer.rdmc import RDMC  # noqa: E402
from scoresample.samplers.rdmc import rdmc  # noqa: E402

__all__ += ["RDMC", "rdmc"]

from scoresample.infer.multiscale import MultALMC, MultCDiff  # noqa: E402
from scoresample.samplers.multiscale import multalmc, multcdiff  # noqa: E402

__all__ += ["MultALMC", "MultCDiff", "multalmc", "multcdiff"]

from scoresample.checks import (  # noqa: E402
    SuspectRunWarning,
    check,
    population_summary,
    print_population_summary,
)

__all__ += ["SuspectRunWarning", "check", "population_summary", "print_population_summary"]

from scoresample.infer.adaptation import window_adaptation  # noqa: E402

__all__ += ["window_adaptation"]
