"""The main job runs end to end and writes its figure and table."""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import scoresample
from scoresample import cli
from scoresample.cli import DEMO_KERNELS, main

AVAILABLE = {n for n, _ in DEMO_KERNELS if hasattr(scoresample, n)}


def test_demo_quick_writes_figure_and_table(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| sampler |" in out
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    rows = json.loads((tmp_path / "demo.json").read_text())
    names = {r["sampler"] for r in rows}
    assert names == {"NUTS"} | AVAILABLE
    for r in rows:
        # the weights are rounded to 4 decimals, so they sum to 1 within 4 x 0.5e-4
        assert len(r["mode_weights"]) == 4 and abs(sum(r["mode_weights"]) - 1) < 1e-3
    # What the demo is for: chains that keep their start modes (NUTS: weights in multiples of
    # 1/4 from its 4 chains, error 0.2, R-hat 1.73 here) against samplers that move mass between
    # the modes. The one-trajectory-per-draw kernels have 200 independent draws (weight MC sd
    # <= 0.035, plus the chains' different warmups): measured errors 0.03-0.08, R-hat <= 1.07;
    # population kernels 0.02-0.03. A stuck kernel can have a small weight error by chance
    # (4 stuck chains: 0.1 at best), never an R-hat near 1.
    by_name = {r["sampler"]: r for r in rows}
    assert by_name["NUTS"]["mode_weight_error"] >= 0.15 and by_name["NUTS"]["rhat_max"] > 1.5
    for name in {"RDMC", "MultALMC", "MultCDiff", "EnsembleDiffusion", "CMCD"} & AVAILABLE:
        r = by_name[name]
        assert r["mode_weight_error"] < 0.15 and r["rhat_max"] < 1.2, (name, r)


def test_bench_command_runs_ours_and_baselines(tmp_path):
    args = [
        "bench",
        "--targets",
        "mixture4_2d",
        "--samplers",
        "SMC-RW",
        "RandomizedMidpoint",
        "--draws",
        "256",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    rows = json.loads((tmp_path / "bench.json").read_text())
    assert [r["sampler"] for r in rows] == ["SMC-RW", "RandomizedMidpoint"]
    assert (tmp_path / "bench.png").exists() and "Command:" in (tmp_path / "bench.md").read_text()
    # RMP is a local sampler: from per-chain starts it cannot move mass between modes 50 nats
    # apart, and SMC from a wide reference gets every mode some mass.
    assert min(rows[0]["mode_weights"]) > 0.02


def test_api_reference_lists_every_kernel(tmp_path):
    path = tmp_path / "API.md"
    assert main(["api", "--out", str(path)]) == 0
    text = path.read_text()
    for name in AVAILABLE:
        assert f"scoresample.{name}(" in text
    # the committed reference is the docstrings as they are (regenerate: scoresample api)
    committed = Path(__file__).parent.parent / "docs" / "API.md"
    assert committed.read_text() == text


def _no_run(*args, **kwargs):
    raise AssertionError("a sampler ran although the command line was invalid")


def _bench_rejects(argv, monkeypatch, capsys) -> str:
    """``bench`` with ``argv`` exits with argparse's code 2 before any runner is built; stderr."""
    monkeypatch.setattr(cli, "bench_runner", _no_run)
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv])
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_unknown_sampler_rejected_before_anything_runs(tmp_path, monkeypatch, capsys):
    # NUTS comes first: today's late failure would have run it before rejecting "NoSuch"
    err = _bench_rejects(
        ["--samplers", "NUTS", "NoSuch", "--out", str(tmp_path)], monkeypatch, capsys
    )
    assert "NoSuch" in err
    for name in cli.bench_samplers():
        assert repr(name) in err
    assert not (tmp_path / "bench.json").exists()


def test_unknown_target_rejected_before_anything_runs(tmp_path, monkeypatch, capsys):
    err = _bench_rejects(
        ["--targets", "mixture4_2d", "nosuch", "--out", str(tmp_path)], monkeypatch, capsys
    )
    assert "nosuch" in err
    for name in cli.bench_targets():
        assert repr(name) in err


@pytest.mark.parametrize("draws", ["0", "-3", "2.5", "many"])
def test_bad_draw_count_rejected(draws, monkeypatch, capsys):
    err = _bench_rejects(["--draws", draws], monkeypatch, capsys)
    assert "--draws" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"scoresample {scoresample.__version__}"


def test_bench_help_lists_targets_samplers_and_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    names = list(cli.bench_targets()) + cli.bench_samplers()
    assert AVAILABLE <= set(names)
    for name in names:
        assert re.search(rf"[ :,]{re.escape(name)}[,( ]", out), name
    assert "(default: 1024)" in out


def test_package_docstring_lists_every_public_name():
    doc = scoresample.__doc__
    for name in scoresample.__all__:
        # one line each: the name, indented, then its description
        assert re.search(rf"^    {name} +\S", doc, re.MULTILINE), name


def test_bench_writes_each_result_when_it_finishes(tmp_path, monkeypatch):
    """A run that crashes keeps the results of the runs before it on disk."""
    from scoresample.bench import RunResult

    def fake_runner(name, num_draws):
        def run(target, seed):
            if name != "SMC-RW":
                raise RuntimeError("second sampler crashed")
            rng = np.random.default_rng(seed)
            means = np.asarray(target.component_means)
            draws = means[rng.choice(len(means), size=(4, 64))] + rng.normal(size=(4, 64, 2))
            return RunResult(name, target.name, draws, 0.0, 0.0, 0.0, 0.0, 0.0)

        return run

    monkeypatch.setattr(cli, "bench_runner", fake_runner)
    argv = ["bench", "--samplers", "SMC-RW", "NUTS", "--draws", "256", "--out", str(tmp_path)]
    with pytest.raises(RuntimeError, match="second sampler crashed"):
        main(argv)
    rows = json.loads((tmp_path / "bench.json").read_text())
    assert [r["sampler"] for r in rows] == ["SMC-RW"]
    assert "Partial: 1 of 2 runs" in (tmp_path / "bench.md").read_text()


def test_ess_summary_silences_arviz():
    import arviz as az

    from scoresample import bench

    draws = np.random.default_rng(0).normal(size=(64, 4, 2))  # more chains than draws
    with pytest.warns(UserWarning, match="More chains"):  # what ArviZ says on its own
        az.convert_to_dataset({"x": draws})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bench.ess_summary(draws)
    # the filter is local: warnings after it (our SuspectRunWarning) still show
    with pytest.warns(scoresample.SuspectRunWarning):
        warnings.warn("ours", scoresample.SuspectRunWarning, stacklevel=1)


def test_plain_numbers():
    from scoresample import bench

    row = bench.plain({"w": np.array([0.1, 0.2]), "n": np.int64(3), "x": (np.float32(0.5),)})
    assert row == {"w": [0.1, 0.2], "n": 3, "x": [0.5]}
    assert repr(row) == "{'w': [0.1, 0.2], 'n': 3, 'x': [0.5]}"


def test_api_default_path_is_created_and_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["api"]) == 0
    path = tmp_path / "docs" / "API.md"
    assert path.read_text() == cli.api_markdown()
    assert f"wrote {path.resolve()}" in capsys.readouterr().out
