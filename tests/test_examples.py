"""Every example runs with small sizes and says something true."""

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_eight_schools_swap_in(tmp_path):
    summary = load("eight_schools_swap_in").main(["--small", "--out", str(tmp_path)])
    assert set(summary) == {"NUTS", "RandomizedMidpoint", "RDMC"}
    for table in summary.values():
        # posteriordb: mu 4.41 (sd 3.31); a short run lands within 1.5 posterior sd.
        assert abs(table.loc["mu", "mean"] - 4.41) < 1.5 * 3.31
    assert len(list(tmp_path.glob("eight_schools_trace_*.png"))) == 3


def test_multimodal():
    weights = load("multimodal").main(["--small"])
    truth = np.array([0.1, 0.2, 0.3, 0.4])
    for name in ("RDMC", "CMCD"):
        # RDMC: 800 draws, CMCD: 1024 particles -> a 4-sd MC band of about ±0.07.
        assert np.max(np.abs(weights[name] - truth)) < 0.08, (name, weights[name])


def test_gradient_free():
    mean, exact, grads = load("gradient_free").main(["--small"])
    assert grads == 0
    assert abs(mean - exact) < 0.15


def test_many_chains():
    n, _ = load("many_chains").main(["--small"])
    assert n == 32 * 4
