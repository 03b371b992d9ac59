"""Gaussian targets with exact moments: isotropic, and ill-conditioned with a random rotation."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from scoresample.targets.base import Target


def _gaussian_target(name, mean, cov, seed_sampler=0) -> Target:
    d = mean.shape[0]
    prec = np.linalg.inv(cov)
    chol = np.linalg.cholesky(cov)
    log_z = 0.5 * d * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(cov)[1]
    mean_j, prec_j, chol_j = jnp.asarray(mean), jnp.asarray(prec), jnp.asarray(chol)

    def logdensity_fn(x):
        r = x - mean_j.astype(x.dtype)
        return -0.5 * r @ (prec_j.astype(x.dtype) @ r)

    def model():
        numpyro.sample("x", dist.MultivariateNormal(mean_j, scale_tril=chol_j))

    def sample(rng: np.random.Generator, n: int):
        return mean + rng.standard_normal((n, d)) @ chol.T

    return Target(
        name,
        d,
        logdensity_fn,
        model,
        mean=mean,
        sd=np.sqrt(np.diag(cov)),
        cov=cov,
        log_z=float(log_z),
        sample=sample,
    )


def isotropic_gaussian(dim: int = 10, scale: float = 1.0, shift: float = 0.0) -> Target:
    """N(shift·1, scale² I) in d dimensions (unnormalised log density; log_z is its normaliser)."""
    mean = np.full(dim, shift, np.float64)
    return _gaussian_target(f"gaussian{dim}", mean, scale**2 * np.eye(dim))


def anisotropic_gaussian(dim: int = 10, min_sd: float = 0.5, max_sd: float = 2.0) -> Target:
    """Axis-aligned Gaussian, sds log-spaced in [min_sd, max_sd], mean 1..d/… (non-zero)."""
    sd = np.geomspace(min_sd, max_sd, dim)
    mean = np.linspace(-1.0, 1.0, dim)
    return _gaussian_target(f"aniso_gaussian{dim}", mean, np.diag(sd**2))


def ill_conditioned_gaussian(dim: int = 100, condition: float = 1e4, seed: int = 0) -> Target:
    """Zero-mean Gaussian whose covariance eigenvalues are log-spaced over ``condition``
    (1e-2 … 1e2 for 1e4), rotated by a random orthogonal matrix (QR of a Gaussian matrix)."""
    rng = np.random.default_rng(seed)
    eig = np.geomspace(1.0 / np.sqrt(condition), np.sqrt(condition), dim)
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    cov = (q * eig) @ q.T
    cov = 0.5 * (cov + cov.T)
    return _gaussian_target(f"ill_gaussian{dim}", np.zeros(dim), cov)
