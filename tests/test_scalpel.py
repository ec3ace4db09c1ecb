"""Scalpel's policy: choices derived from the simulators, dense above break-even."""

from __future__ import annotations

import numpy as np
import pytest

import hwprune
from hwprune.cli import main
from hwprune.studies import scalpel as S


@pytest.fixture(scope="module")
def results():
    return {dev: S.scalpel("digits-mlp", hwprune.device(dev), 0.01) for dev in ("cortex-m4", "titan-x")}


def test_every_layer_gets_a_scheme_a_density_and_a_reason(results):
    for r in results.values():
        df = r.layers
        assert list(df["layer"]) == ["fc1", "fc2", "fc3"]
        assert set(df["scheme"]) <= {"dense", "fine", "simd", "node"}
        assert (df["density"] > 0).all() and (df["density"] <= 1).all()
        assert df["reason"].str.len().min() > 20
        # a pruned choice is one the latency simulator says is faster than dense
        assert (df.loc[df["scheme"] != "dense", "speedup"] > 1).all()
        assert r.final_accuracy >= r.dense_accuracy - 0.03


def test_the_choice_depends_on_the_device(results):
    m4, gpu = results["cortex-m4"].layers, results["titan-x"].layers
    assert results["cortex-m4"].group == 2 and results["titan-x"].group == 32
    assert not np.allclose(m4["speedup"], gpu["speedup"])


def test_a_layer_stays_dense_when_its_density_is_above_break_even(monkeypatch):
    S._search_cached.cache_clear()
    monkeypatch.setattr(S, "DENSITY_GRID", (0.95,))
    r = S.scalpel("digits-mlp", hwprune.device("core-i7"), 0.01)
    S._search_cached.cache_clear()
    fine = r.layers.set_index("layer")
    # On the cpu, csr at 95% density is slower than dense: no layer picks fine there.
    assert (fine["fine_speedup"] < 1).all()
    assert "fine" not in set(fine["scheme"])
    dense = fine[fine["scheme"] == "dense"]
    assert all("no scheme is faster than dense" in why for why in dense["reason"])


def test_granularity_cli_rejects_networks_without_weights(capsys):
    assert main(["granularity", "alexnet", "--device", "titan-x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--density" in err[0]


def test_recommendation_from_the_simulators_alone():
    import hwprune
    from hwprune.studies.recommend import recommend

    net = hwprune.network("lenet-300-100")
    dev = hwprune.device("core-i7")
    dense_like = recommend(net, dev, 0.99)
    assert set(dense_like["scheme"]) == {"dense"}            # above every break-even point
    assert dense_like["reason"].str.contains("no scheme is faster").all()
    sparse = recommend(net, dev, 0.05).set_index("layer")
    assert (sparse.loc[sparse["scheme"] != "dense", "speedup"] > 1).all()
    assert sparse.loc["ip3", "scheme"] != "node"                        # the classes are kept
    m4 = recommend(net, hwprune.device("cortex-m4"), 0.05)
    assert not np.allclose(m4["speedup"], sparse["speedup"])


def test_granularity_cli_with_density_takes_any_network(capsys):
    assert main(["granularity", "lenet-5", "--device", "cortex-m4", "--density", "0.2", "--format",
                 "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("layer,kind,scheme,density,inputs_kept,speedup,energy_ratio,reason")
    assert len(lines) == 1 + 4
