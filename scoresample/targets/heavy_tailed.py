"""A heavy-tailed posterior with exact quantiles: the multivariate Student-t.

x ~ t_ν(loc, diag(scale)²) in d dimensions, i.e. x = loc + scale ⊙ g / sqrt(χ²_ν / ν) with one χ²
shared by all coordinates. Every marginal is a univariate Student-t with ν degrees of freedom,
location loc_i and scale scale_i, so its quantiles are loc_i + scale_i · t_ν⁻¹(p) exactly; with
ν = 3 the variance is finite (3 scale²) but the fourth moment is not, the regime where samplers
that start from a Gaussian reference under-cover the tails.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import scipy.special
import scipy.stats

from scoresample.targets.base import Target

__all__ = ["student_t", "student_t_quantiles"]


def student_t_quantiles(target: Target, probs) -> np.ndarray:
    """Exact marginal quantiles, shape (len(probs), d)."""
    nu, loc, scale = target.extra["df"], target.extra["loc"], target.extra["scale"]
    q = scipy.stats.t.ppf(np.asarray(probs, np.float64), nu)
    return loc[None, :] + q[:, None] * scale[None, :]


def student_t(dim: int = 5, df: float = 3.0, seed: int = 0) -> Target:
    """Multivariate Student-t with ``df`` degrees of freedom (default 3) in ``dim`` dimensions
    (default 5), location linspace(-1, 1) and scales log-spaced in [0.5, 2]; log Z = 0.

    ``target.extra`` holds df, loc, scale and ``quantiles`` (the exact 5% and 95% marginal
    quantiles, shape (2, d)); ``student_t_quantiles`` gives any others.
    """
    del seed
    loc = np.linspace(-1.0, 1.0, dim)
    scale = np.geomspace(0.5, 2.0, dim)
    loc_j, scale_j = jnp.asarray(loc), jnp.asarray(scale)
    log_norm = (
        scipy.special.gammaln((df + dim) / 2)
        - scipy.special.gammaln(df / 2)
        - 0.5 * dim * np.log(df * np.pi)
        - np.sum(np.log(scale))
    )

    def logdensity_fn(x):
        z = (x - loc_j.astype(x.dtype)) / scale_j.astype(x.dtype)
        return -0.5 * (df + dim) * jnp.log1p(jnp.sum(z**2, axis=-1) / df) + log_norm

    def model():
        numpyro.sample(
            "x",
            dist.MultivariateStudentT(df, loc_j, scale_tril=jnp.diag(scale_j)),
        )

    def sample(rng: np.random.Generator, n: int):
        g = rng.standard_normal((n, dim))
        w = rng.chisquare(df, size=(n, 1)) / df
        return loc + scale * g / np.sqrt(w)

    sd = scale * np.sqrt(df / (df - 2.0)) if df > 2 else np.full(dim, np.inf)
    target = Target(
        f"student_t{int(df)}_{dim}d",
        dim,
        logdensity_fn,
        model,
        mean=loc if df > 1 else None,
        sd=sd,
        cov=np.diag(sd**2) if df > 2 else None,
        log_z=0.0,
        sample=sample,
        extra={"df": float(df), "loc": loc, "scale": scale},
    )
    target.extra["quantiles"] = student_t_quantiles(target, [0.05, 0.95])
    return target
