"""scoresample: training-free score-based samplers for Bayesian inference in JAX.

NumPyro kernels (drop-ins for NUTS): RandomizedMidpoint.
BlackJAX-style algorithms: rmp.
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

from scoresample.checks import SuspectRunWarning, check  # noqa: E402

__all__ += ["SuspectRunWarning", "check"]
