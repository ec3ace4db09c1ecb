"""The equal-accuracy density model (hwprune.studies.density_model), the published
structures it is derived from (hwprune.studies.published) and its use by
``granularity --density`` (hwprune.studies.recommend)."""

from __future__ import annotations

import math

import pytest

import hwprune
from hwprune.cli import main
from hwprune.latency.work import KernelShape
from hwprune.schemes import FINE, NODE, SIMD
from hwprune.studies import density_model as M
from hwprune.studies import published as P
from hwprune.studies.recommend import ModelledDensities, describe, recommend, scheme_densities


def test_mao_ratios_are_medians_of_the_published_table():
    r = M.mao_ratios()
    # vector/fine: AlexNet 29.9/22.1, VGG 30.7/27.0, GoogLeNet 36.9/32.3, ResNet 40.0/37.1,
    # DenseNet 31.1/26.6 -> sorted 1.078 1.137 1.142 1.169 1.353: the median is GoogLeNet's
    assert r["vector"].median == pytest.approx(36.9 / 32.3)
    assert r["vector"].low == pytest.approx(40.0 / 37.1) and r["vector"].high == pytest.approx(29.9 / 22.1)
    # kernel/fine: 1.710 1.644 1.353 1.652 1.335 -> the median is VGG-16's 44.4/27.0
    assert r["kernel"].median == pytest.approx(44.4 / 27.0)
    assert r["kernel"].n == 5


def test_group_ratio_by_hand():
    assert M.group_ratio(1) == 1.0
    assert M.group_ratio(3) == pytest.approx(36.9 / 32.3)
    assert M.group_ratio(9) == pytest.approx(44.4 / 27.0)
    # g = 2: log-linear between g=1 and g=3: 1 + 0.14241 * ln2/ln3 = 1.0899
    assert M.group_ratio(2) == pytest.approx(1 + (36.9 / 32.3 - 1) * math.log(2) / math.log(3))
    assert M.group_ratio(2) == pytest.approx(1.0899, abs=1e-4)
    # beyond 9 the last segment's slope continues: ratio(27) = kernel + (kernel - vector)
    assert M.group_ratio(27) == pytest.approx(2 * 44.4 / 27.0 - 36.9 / 32.3)
    widths = [1, 2, 3, 4, 8, 9, 16, 32, 64]
    assert all(M.group_ratio(a) < M.group_ratio(b) for a, b in zip(widths, widths[1:]))


def test_node_exponents_are_medians_per_kind():
    b = M.node_exponents()
    # conv points: lenet-5 conv1-2, alexnet conv1-5 (7); median alexnet/conv4 ln(238/384)/ln(.37)
    assert b["conv"].n == 7
    assert b["conv"].median == pytest.approx(math.log(238 / 384) / math.log(0.37))
    # fc points: lenet-300-100 ip1-2, lenet-5 ip1, alexnet fc6-7 (5); median ln(64/100)/ln(.09)
    assert b["fc"].n == 5
    assert b["fc"].median == pytest.approx(math.log(0.64) / math.log(0.09))
    assert b["conv"].low == pytest.approx(math.log(253 / 256) / math.log(0.37))


def test_model_density_by_hand():
    conv = KernelShape.of(hwprune.network("lenet-5")["conv2"])
    fc = KernelShape.of(hwprune.network("lenet-5")["ip1"])
    beta_conv, beta_fc = M.node_exponents()["conv"].median, M.node_exponents()["fc"].median
    assert M.model_density("fine", fc, 2, 0.1) == 0.1
    assert M.model_density("simd", fc, 2, 0.1) == pytest.approx(0.1 * M.group_ratio(2))
    assert M.model_density("simd", conv, 8, 0.1) == pytest.approx(0.1 * M.group_ratio(8))
    assert M.model_density("node", conv, 8, 0.1) == pytest.approx(0.1 ** beta_conv)
    assert M.model_density("node", fc, 8, 0.1) == pytest.approx(0.1 ** beta_fc)
    assert M.model_density("node", fc, 8, 0.1) == pytest.approx(0.6526, abs=1e-3)
    # 5x5 kernels: a kernel group is 25 weights, a vector 5; on an fc layer both are fine
    assert M.model_density("kernel", conv, 8, 0.1) == pytest.approx(0.1 * M.group_ratio(25))
    assert M.model_density("vector", conv, 8, 0.1) == pytest.approx(0.1 * M.group_ratio(5))
    assert M.model_density("kernel", fc, 8, 0.1) == 0.1
    assert M.model_density("dense", fc, 8, 0.1) == 1.0
    assert M.model_density("simd", fc, 32, 0.9) == 1.0          # capped at 1
    for s in ("fine", "simd", "vector", "kernel", "filter", "node"):
        assert M.model_density(s, conv, 8, 1.0) == 1.0
        values = [M.model_density(s, conv, 8, d) for d in (0.01, 0.05, 0.1, 0.3, 0.6, 1.0)]
        assert values == sorted(values) and all(0 < v <= 1 for v in values)


def test_published_structures_fit_the_built_in_networks():
    for net_name, layers in P.SCALPEL_NODE.items():
        net = hwprune.network(net_name)
        for layer, (kept, total) in layers.items():
            assert net[layer].output_shape[0] == total and 0 < kept < total
        assert net.weighted_layers[-1].name not in layers          # the classes are kept
    for net_name, layers in P.HAN_FINE.items():
        names = [lay.name for lay in hwprune.network(net_name).weighted_layers]
        assert list(layers) == names and all(0 < d < 1 for d in layers.values())
    assert P.SCALPEL_SIMD["lenet-5"].density == pytest.approx(0.032)


def test_one_density_is_fine_grained_and_the_others_come_from_the_model():
    dens = scheme_densities(0.1)
    assert isinstance(dens, ModelledDensities) and dens.fine == 0.1
    assert scheme_densities(dens) is dens
    assert "Mao et al. 2017" in describe(dens) and "Scalpel" in describe(dens)
    table = recommend(hwprune.network("lenet-5"), hwprune.device("cortex-m4"), 0.1).set_index("layer")
    assert table.loc["ip1", "fine_density"] == 0.1
    assert table.loc["ip1", "simd_density"] == pytest.approx(0.1 * M.group_ratio(2))
    assert table.loc["conv1", "node_density"] == pytest.approx(0.1 ** M.node_exponents()["conv"].median)
    assert table.loc["ip1", "node_density"] == pytest.approx(0.1 ** M.node_exponents()["fc"].median)


def test_explicit_densities_are_taken_as_given():
    dens = scheme_densities("fine=0.1,simd=0.1,node=0.1")
    assert dens == {FINE: 0.1, SIMD: 0.1, NODE: 0.1}
    assert describe(dens) == "assuming each of fine, simd, node reaches density 0.1"


def test_cli_footer_names_the_model_and_unknown_schemes_are_one_line_errors(capsys):
    assert main(["granularity", "lenet-300-100", "--device", "cortex-m4", "--density", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "density of equal accuracy" in out and "Mao et al. 2017" in out
    assert main(["granularity", "lenet-300-100", "--device", "cortex-m4", "--density",
                 "fine=0.1,blk=0.2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwprune: error:") and "unknown scheme 'blk'" in err[0]


def _validate_scalpel():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "validate_scalpel.py"
    spec = importlib.util.spec_from_file_location("validate_scalpel", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_validate_scalpel_prices_the_published_structures():
    from hwprune.evaluate import evaluate

    V = _validate_scalpel()
    net, dev = hwprune.network("lenet-5"), hwprune.device("cortex-m4")
    plans = V.plans(net, dev)
    assert plans["fine"]["conv2"].density == 0.12 and plans["fine"]["ip2"].density == 0.19
    assert plans["simd"]["ip1"].density == pytest.approx(0.08 * M.group_ratio(2))
    assert plans["node"]["conv2"].density == pytest.approx(18 / 50) and "ip2" not in plans["node"].layers
    assert plans["scalpel"] is plans["simd"]                                  # mcu: SIMD-aware
    ev = evaluate(net, dev, plans["node"])
    assert ev["ip1"].inputs_kept == pytest.approx(18 / 50)     # the next layer loses the inputs
    assert ev["ip2"].inputs_kept == pytest.approx(65 / 500)
    # no published per-layer density: the median of Han's of the same role
    cifar = V.fine_densities(hwprune.network("cifar10-quick"))
    assert cifar["conv1"] == (0.37, "han-median") and cifar["ip1"] == (0.09, "han-median")
    assert cifar["ip2"] == (0.25, "han-median")
