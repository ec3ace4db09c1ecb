"""Layers without MACs (normalization, activations, element-wise arithmetic, pooling,
data movement): their passes, and their rows in the energy and latency tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwprune
from hwprune import api
from hwprune.cost.energy import pass_cost
from hwprune.cost.search import device_arrays
from hwprune.latency.passes import pass_latency
from hwprune.workload.builder import NetworkBuilder
from hwprune.workload.passes import OPS_PER_ELEMENT, TRANSCENDENTAL_OPS, PassWork, pass_works

DEVICES = ["eyeriss", "core-i7", "titan-x", "cortex-m4"]


def _cnn():
    """conv -> bn -> relu (folded, fused); a residual add, a relu after it (a stream);
    a squeeze-excite gate; pooling; a channel slice (view) and a spatial slice (copy);
    a concat; a permute; a flatten."""
    b = NetworkBuilder("passes", (8, 8, 8))
    c = b.conv("conv", b.input, 8, 3, padding=1, bias=False)
    n = b.batchnorm("bn", c)
    r = b.activation("relu", n, "relu")
    s = b.add("add", [r, b.input])
    a = b.activation("relu2", s, "relu")
    g = b.global_avgpool("gap", a)
    g = b.activation("gate", g, "sigmoid")
    m = b.elementwise("scale", "mul", [a, g])
    p = b.maxpool("pool", m, 2, 2)
    h = b.slice("half", p, 0, 0, 4)
    w = b.slice("cols", p, 2, 0, 2)
    cat = b.concat("cat", [h, h])
    b.permute("perm", w, (1, 2, 0))
    b.flatten("flat", cat)
    return b.build()


def test_hand_counted_passes():
    w = pass_works(_cnn())
    assert w["bn"] == PassWork("folded")
    assert w["relu"] == PassWork("fused", ops=512)
    assert w["add"] == PassWork("stream", 1024, 512, 512)
    assert w["relu2"] == PassWork("stream", 512, 512, 512)            # an add is no kernel
    assert w["gap"] == PassWork("stream", 512, 8, 8 * 64)
    sigmoid = TRANSCENDENTAL_OPS + 1 + 5
    assert OPS_PER_ELEMENT["sigmoid"] == sigmoid
    assert w["gate"] == PassWork("stream", 8, 8, 8 * sigmoid)         # a pool is no kernel
    assert w["scale"] == PassWork("stream", 512 + 8, 512, 512)        # broadcast gate read once
    assert w["pool"] == PassWork("stream", 512, 128, 128 * 4)
    assert w["half"] == PassWork("view")                              # channels: contiguous
    assert w["cols"] == PassWork("copy", 64, 64)                      # columns: strided
    assert w["cat"] == PassWork("copy", 128, 128)
    assert w["perm"] == PassWork("copy", 64, 64)
    assert w["flat"] == PassWork("view")
    assert "conv" not in w


def test_fusion_needs_a_sole_reader_and_a_pointwise_function():
    b = NetworkBuilder("f", (16, 32))
    q = b.token_fc("q", b.input, 32)
    b.elementwise("scaled", "mul", [q])                # x * 0.5 after a kernel: fused
    b.activation("soft", q, "softmax")                 # q has two readers now
    k = b.token_fc("k", b.input, 32)
    b.activation("soft2", k, "softmax")                # a row reduction: never fused
    c = b.token_fc("c", b.input, 32)
    b.activation("gelu", c, "gelu")
    net = b.build()
    w = pass_works(net)
    assert w["scaled"].runs_as == "stream" and w["soft"].runs_as == "stream"
    assert w["soft2"] == PassWork("stream", 512, 512, 512 * OPS_PER_ELEMENT["softmax"])
    assert w["gelu"] == PassWork("fused", ops=512 * OPS_PER_ELEMENT["gelu"])


def test_permute_of_unit_axes_is_a_view():
    b = NetworkBuilder("p", (1, 4, 6))
    b.permute("p", b.input, (1, 0, 2))
    b.upsample("up", b.input, (8, 12), mode="bilinear")
    w = pass_works(b.build())
    assert w["p"].runs_as == "view"
    assert w["up"] == PassWork("stream", 24, 96, 96 * 4)


@pytest.mark.parametrize("dev_id", DEVICES)
def test_stream_energy_by_hand(dev_id):
    """Inputs read once at every level holding inputs, outputs written once at every
    level holding outputs, one NoC transfer each, one MAC energy per operation."""
    dev = hwprune.device(dev_id)
    work = PassWork("stream", 1000, 400, 700)
    arrays = device_arrays(dev)
    want = 3 * 700 * dev.compute.mac_energy_pj
    for i, lvl in enumerate(arrays.storage):
        want += 3 * 1000 * arrays.rd[i, 1] * ("inputs" in lvl.holds)
        want += 3 * 400 * arrays.wr[i, 2] * ("outputs" in lvl.holds)
    want += 3 * (1000 * arrays.noc_pj[1] + 400 * arrays.noc_pj[2])
    cost = pass_cost(work, dev, batch=3)
    assert cost.energy_pj == pytest.approx(want, rel=1e-12)
    assert cost.operand_pj["compute_pj"] == pytest.approx(2100 * dev.compute.mac_energy_pj)
    assert pass_cost(PassWork("fused", ops=700), dev).energy_pj == pytest.approx(
        700 * dev.compute.mac_energy_pj)
    for nothing in ("folded", "view"):
        assert pass_cost(PassWork(nothing), dev).energy_pj == 0.0
        assert pass_latency(PassWork(nothing), dev).cycles == 0.0


def test_mcu_stream_and_copy_by_hand():
    """cortex-m4: load 2, pipelined load 1, alu 1, branch 3, unroll 4 (its profile)."""
    dev = hwprune.device("cortex-m4")
    lat = dev.latency
    assert (lat["load_cycles"], lat["pipelined_load_cycles"], lat["alu_cycles"], lat["branch_cycles"],
            lat["loop_unroll"]) == (2, 1, 1, 3, 4)
    # an add of two tensors: per output a run of 2 loads (2 + 1), a store (1), one ALU op,
    # loop over 3 pointers ((3 + 1) * 1 + 3) / 4 = 1.75: 3 + 1 + 1 + 1.75 = 6.75
    assert pass_latency(PassWork("stream", 200, 100, 100), dev).cycles == pytest.approx(100 * 6.75)
    # copy of 100 q15 values: 50 words, an LDR/STR pair each
    assert pass_latency(PassWork("copy", 100, 100), dev).cycles == pytest.approx(100)
    assert pass_latency(PassWork("fused", ops=300), dev).cycles == pytest.approx(300)


def test_gpu_stream_is_a_launch_and_a_roofline():
    dev = hwprune.device("titan-x")
    dram = dev.memory[-1]
    work = PassWork("stream", 10**6, 10**6, 10**6)
    est = pass_latency(work, dev)
    moved = 2 * 10**6 * dev.element_bytes
    want_dram = moved / (dram.bandwidth_bytes_per_cycle * dev.latency["dram_efficiency"])
    assert est.bound == "dram"
    assert est.cycles == pytest.approx(dev.latency["launch_cycles"] + want_dram)


def test_cpu_and_accelerator_streams_are_memory_bound_rooflines():
    cpu = hwprune.device("core-i7")
    small, big = PassWork("stream", 1000, 1000, 1000), PassWork("stream", 10**7, 10**7, 10**7)
    assert pass_latency(big, cpu).bound.endswith("_bandwidth")
    assert pass_latency(big, cpu).cycles > 1000 * pass_latency(small, cpu).cycles
    eyeriss = hwprune.device("eyeriss")
    est = pass_latency(big, eyeriss)
    top = [lvl for lvl in eyeriss.memory if "inputs" in lvl.holds][-1]
    assert est.bound == top.name
    assert est.cycles == pytest.approx(2 * 10**7 * eyeriss.element_bytes
                                       / (top.bandwidth_bytes_per_cycle * top.instances))


@settings(max_examples=40, deadline=None)
@given(dev_id=st.sampled_from(DEVICES), runs_as=st.sampled_from(["stream", "copy"]),
       reads=st.integers(1, 10**6), writes=st.integers(1, 10**6), ops=st.integers(0, 10**6),
       batch=st.integers(1, 8))
def test_pass_costs_grow_with_work_and_batch(dev_id, runs_as, reads, writes, ops, batch):
    dev = hwprune.device(dev_id)
    ops = ops if runs_as == "stream" else 0
    work = PassWork(runs_as, reads, writes, ops)
    more = PassWork(runs_as, reads + 1000, writes + 1000, ops + (1000 if runs_as == "stream" else 0))
    e1, e2 = pass_cost(work, dev, batch).energy_pj, pass_cost(more, dev, batch).energy_pj
    assert 0 < e1 < e2
    assert pass_cost(work, dev, batch).energy_pj == pytest.approx(batch * pass_cost(work, dev).energy_pj)
    t1, t2 = pass_latency(work, dev, batch).cycles, pass_latency(more, dev, batch).cycles
    assert 0 < t1 <= t2
    assert pass_latency(work, dev, batch + 1).cycles >= t1
    fused = PassWork("fused", ops=ops)
    assert pass_cost(fused, dev, batch).energy_pj <= e1


@pytest.mark.parametrize("dev_id", DEVICES)
def test_every_layer_has_a_row_and_the_totals_add_up(dev_id):
    net = _cnn()
    energy = api.energy(net, dev_id)
    latency = api.latency(net, dev_id)
    names = [layer.name for layer in net.layers]
    assert list(energy["layer"]) == names and list(latency["layer"]) == names
    assert list(energy["runs_as"]) == list(latency["runs_as"])
    level_names = api.level_columns(hwprune.device(dev_id))
    levels = [c for c in energy.columns if c.endswith("_pj") and c[:-3] in level_names]
    np.testing.assert_allclose(energy[levels].sum(axis=1) + energy["compute_pj"], energy["energy_pj"])
    operands = ["weights_pj", "index_pj", "inputs_pj", "outputs_pj", "compute_pj"]
    np.testing.assert_allclose(energy[operands].sum(axis=1), energy["energy_pj"])
    free = latency["runs_as"].isin(["folded", "view"])
    assert (latency.loc[free, "seconds"] == 0).all() and (latency.loc[~free, "seconds"] > 0).all()
    assert energy.set_index("layer").loc["bn", "energy_pj"] == 0.0


def test_cli_totals_are_the_sums_of_the_rows(capsys):
    from hwprune.cli import main

    for verb, column, scale in (("energy", "energy_pj", 1.0), ("latency", "seconds", 1e3)):
        assert main([verb, "resnet18", "--device", "eyeriss"]) == 0
        out = capsys.readouterr().out
        table = (api.energy if verb == "energy" else api.latency)("resnet18", "eyeriss")
        total = table[column].sum() * scale
        assert f"total {total:.4g}" in out
        assert f"over {len(table)} layers" in out or verb == "latency"
        assert len(table) == len(hwprune.network("resnet18").layers)
        assert not math.isnan(total)
