"""The peer comparison's inputs (benchmarks/peers/, benchmarks/validate_energy.py): the
mirrored profiles load and price a layer, the checked-in Timeloop figures parse, and a
one-layer ZigZag run (when zigzag-dse imports) has the per-level structure the mirror
maps."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import hwprune

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import validate_energy as ve  # noqa: E402
import zigzag_peer as zp  # noqa: E402

PROFILES = sorted((BENCH / "peers").glob("*.toml"))


def test_every_mirror_is_shipped():
    names = {p.name for p in PROFILES}
    assert {"zigzag_eyeriss_like.toml", "zigzag_tpu_like.toml", "timeloop_eyeriss_like.toml"} <= names
    assert {f for f, _ in ve.ZIGZAG_MIRRORS.values()} <= names


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_mirror_prices_alexnet_conv1(path):
    """ZigZag's AlexNet conv1 (3x224x224, 96 filters 11x11, stride 4): finite, positive
    energy on every mirrored profile, and every level of the profile has its column."""
    net, batch = ve.conv_layer("conv1", 1, 3, (224, 224), 96, (11, 11), (4, 4), (0, 0), (0, 0))
    assert net.macs == 96 * 3 * 54 * 54 * 11 * 11
    levels = ve.hwprune_levels(net, batch, path)
    dev = hwprune.device(path)
    assert set(levels) == {lvl.name for lvl in dev.memory} | {"MAC"}
    assert all(math.isfinite(v) and v >= 0 for v in levels.values())
    assert sum(levels.values()) > 0
    assert levels["MAC"] == pytest.approx(net.macs * dev.compute.mac_energy_pj)


def test_every_number_of_the_mirrors_has_a_source():
    """Every numeric key of a mirrored profile names where it comes from."""
    import tomllib

    for path in PROFILES:
        doc = tomllib.loads(path.read_text())
        tables = [("", doc), ("compute", doc["compute"])]
        tables += [(f"memory[{i}]", m) for i, m in enumerate(doc["memory"])]
        for where, table in tables:
            numeric = {k for k, v in table.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            sources = set(table.get("sources", {}))
            assert numeric <= sources, f"{path.name} {where}: no source for {sorted(numeric - sources)}"


def test_timeloop_reference_parses():
    records = ve.timeloop_records()
    assert len(records) == 1
    rec = records[0]
    assert set(rec["peer"]) == {"MAC", "RF", "shared_glb", "DRAM"}
    # The stats file's per-level "Energy (total)" lines add up to 59.26 uJ (59.28 with leakage).
    assert sum(rec["peer"].values()) == pytest.approx(59.2598e6, rel=1e-4)
    assert rec["peer"]["MAC"] == pytest.approx(10838016 * 0.207692, rel=1e-6)
    assert all(math.isfinite(v) and v >= 0 for v in rec["ours"].values())
    # Every peer level has a mirrored one; the mirror adds only its free NoC.
    assert set(rec["ours"]) == set(rec["peer"]) | {"NoC"}
    assert rec["ours"]["NoC"] < 1e-3 * sum(rec["ours"].values())


def test_zigzag_skip_is_one_line_when_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "zigzag", None)
    monkeypatch.setitem(sys.modules, "zigzag.api", None)
    problem = zp.zigzag_import_problem()
    assert problem is not None and "\n" not in problem


# Which operands ZigZag 3.9.1's eyeriss_like keeps in each memory (eyeriss_like.yaml).
EYERISS_LIKE_OPERANDS = {"rf_64B_A": {"I"}, "rf_64B_W": {"W"}, "rf_16B": {"O"}, "sram_8KB": {"O"},
                         "sram_64KB": {"W"}, "sram_1M": {"I", "O"}, "dram": {"I", "W", "O"}}


@pytest.mark.skipif(zp.zigzag_import_problem() is not None, reason="zigzag-dse does not import")
def test_zigzag_one_layer_structure():
    result = zp.run_zigzag("alexnet", "eyeriss_like", layers=1)
    assert result["version"] == "3.9.1"
    (layer,) = result["per_layer"]
    assert {m: set(e["operands"]) for m, e in layer["levels"].items()} == EYERISS_LIKE_OPERANDS
    assert set(layer["levels"]) == set(ve.ZIGZAG_MIRRORS["eyeriss_like"][1])
    total = layer["mac_energy_pj"] + sum(e["energy_pj"] for e in layer["levels"].values())
    assert total == pytest.approx(layer["energy_pj"], rel=1e-9)
    shape = layer["shape"]
    assert shape["dims"]["K"] == 96 and shape["dims"]["OX"] == 54 and shape["stride"] == [4, 4]
    assert shape["precision_bits"]["O"] == 16 and shape["precision_bits"]["W"] == 8
    (rec,) = ve.zigzag_records(result, "eyeriss_like")
    assert set(rec["ours"]) == set(rec["peer"]) | {"NoC"}
    assert sum(rec["peer"].values()) == pytest.approx(layer["energy_pj"], rel=1e-9)
