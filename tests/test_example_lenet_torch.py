"""The worked example: Scalpel's LeNets as torch models, pruned by hwprune's policies and
priced on two devices (run small)."""

import importlib.util
import pathlib

import pytest

pytest.importorskip("torch")


def test_lenet_example_runs_small_and_prices_every_policy(capsys):
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "lenet_torch.py"
    spec = importlib.util.spec_from_file_location("lenet_torch_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--small"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("LeNet5")]
    assert len(rows) == 6                         # 3 policies x 2 devices
    assert {r[1] for r in rows} == {"traditional", "simd-aware", "node"}
    for r in rows:
        kept, speedup, energy = float(r[5]), float(r[6]), float(r[7])
        assert 0 < kept < 1 and speedup > 0 and 0 < energy < 1   # pruned: less energy
    assert "not MNIST" in out
