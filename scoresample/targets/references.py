"""Loaders for the shared posteriordb reference draws and data sets.

The shared folder is found from the environment variable SCORESAMPLE_SHARED, else as a folder
named ``shared`` next to (or above) the current directory or this package's checkout.
"""

from __future__ import annotations

import json
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

_SUMMARY_DIR = Path(__file__).parent / "data"


def shared_dir() -> Path:
    """The shared/ folder (references, data); FileNotFoundError naming where it looked."""
    env = os.environ.get("SCORESAMPLE_SHARED")
    candidates = [Path(env)] if env else []
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in [start, *start.parents]:
            candidates.append(parent / "shared")
    for c in candidates:
        if (c / "references").is_dir():
            return c
    raise FileNotFoundError(
        "Could not find the shared/ folder with posteriordb references; set SCORESAMPLE_SHARED. "
        f"Looked in: {[str(c) for c in candidates[:6]]} ..."
    )


def _read_zipped_json(path: Path):
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".json")]
        return json.loads(zf.read(name))


@lru_cache(maxsize=None)
def reference_draws(posterior: str) -> dict[str, np.ndarray]:
    """posteriordb reference draws: {param name: array (chains, draws)}, constrained space."""
    chains = _read_zipped_json(shared_dir() / "references" / posterior / "draws.json.zip")
    names = list(chains[0].keys())
    return {n: np.array([c[n] for c in chains], dtype=np.float64) for n in names}


@lru_cache(maxsize=None)
def reference_data(posterior: str) -> dict:
    return _read_zipped_json(shared_dir() / "references" / posterior / "data.json.zip")


def reference_summary(posterior: str) -> dict[str, dict[str, float]]:
    """{param: {"mean", "sd"}} from the shared draws, or from the copy shipped in the package
    (made from those draws by ``write_reference_summary``) when shared/ is not there."""
    try:
        draws = reference_draws(posterior)
    except FileNotFoundError:
        with open(_SUMMARY_DIR / f"{posterior}.summary.json") as f:
            return json.load(f)
    return {n: {"mean": float(v.mean()), "sd": float(v.std(ddof=1))} for n, v in draws.items()}


def write_reference_summary(posterior: str) -> Path:
    """Write the shipped summary of a posteriordb reference (run when shared/ changes)."""
    draws = reference_draws(posterior)
    summary = {n: {"mean": float(v.mean()), "sd": float(v.std(ddof=1))} for n, v in draws.items()}
    path = _SUMMARY_DIR / f"{posterior}.summary.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return path
