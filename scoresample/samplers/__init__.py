"""One module per algorithm, BlackJAX style: State/Info NamedTuples, init, build_kernel,
as_top_level_api, plus a ``spec`` for the NumPyro front."""

from scoresample.samplers import ensemble, rmp
from scoresample.samplers.base import SamplerSpec

__all__ = ["ensemble", "SamplerSpec", "rmp"]

from scoresample.samplers import cmcd  # noqa: E402

__all__ += ["cmcd"]

from scoresample.samplers import rdmc  # noqa: E402

__all__ += ["rdmc"]

from scoresample.samplers import multiscale  # noqa: E402

__all__ += ["multiscale"]
