"""The NumPyro front: one base MCMCKernel adapter and a thin subclass per sampler."""

from scoresample.infer.base import ScoreSampleKernel, ScoreSampleState
from scoresample.infer.rmp import RandomizedMidpoint

__all__ = ["RandomizedMidpoint", "ScoreSampleKernel", "ScoreSampleState"]
