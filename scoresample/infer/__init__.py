"""The NumPyro front: one base MCMCKernel adapter and a thin subclass per sampler."""

from scoresample.infer.base import ScoreSampleKernel, ScoreSampleState
from scoresample.infer.ensemble import EnsembleDiffusion
from scoresample.infer.rmp import RandomizedMidpoint

__all__ = ["EnsembleDiffusion", "RandomizedMidpoint", "ScoreSampleKernel", "ScoreSampleState"]

from scoresample.infer.cmcd import CMCD  # noqa: E402

__all__ += ["CMCD"]

from scoresample.infer.rdmc import RDMC  # noqa: E402

__all__ += ["RDMC"]

from scoresample.infer.multiscale import MultALMC, MultCDiff  # noqa: E402

__all__ += ["MultALMC", "MultCDiff"]
