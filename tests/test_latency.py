"""Latency models: hand-computed cases, invariants, CLI, calibration pieces."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwprune
from hwprune.cli import main
from hwprune.errors import InputError
from hwprune.hardware.calibrate import _size, host_caches
from hwprune.latency import breakeven, kernel_work, layer_latency, network_latency
from hwprune.latency.network import crossing
from hwprune.latency.work import KernelShape


def test_kernel_work_counts_by_hand():
    shape = KernelShape(rows=10, cols=16, n=1)
    assert kernel_work(shape, "dense", 0.3).stored == 160            # density ignored
    csr = kernel_work(shape, "csr", 0.25)
    assert (csr.stored, csr.index_entries, csr.gathers) == (40, 40, 40)
    grp = kernel_work(shape, "group-csr", 0.5, simd_lanes=8)       # 2 groups per row
    assert (grp.stored, grp.index_entries) == (80, 10)
    comp = kernel_work(shape, "compact", 0.5)
    assert (comp.rows, comp.stored, comp.gathers) == (5, 80, 16)
    conv = KernelShape(rows=4, cols=27, n=100, kernel=(3, 3))
    assert kernel_work(conv, "dense", 1.0).im2col_elements == 2700
    assert kernel_work(conv, "kernel", 1.0).group == 9
    with pytest.raises(InputError, match="prunes convolution kernels"):
        kernel_work(shape, "vector", 0.5)
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        kernel_work(shape, "csr", 0.0)


def test_mcu_dense_fc_by_hand():
    dev = hwprune.device("cortex-m4")
    layer = hwprune.network("lenet-300-100")["ip3"]        # 10 x 100
    est = layer_latency(layer, dev, "dense")
    # 500 words x (2 loads x 2 + SMLAD 1 + branch 3/4) + 10 rows x 10, flash: 2000 B / 16 x 5
    issue = 500 * (2 * 2 + 1 + 0.75) + 10 * 10
    assert est.parts["issue"] == pytest.approx(issue)
    assert est.parts["flash"] == pytest.approx(2000 / 16 * 5)
    assert est.cycles == pytest.approx(issue + 625)
    assert est.seconds == pytest.approx(est.cycles / 168e6)   # predicted, not timed


@settings(max_examples=15, deadline=None)
@given(d1=st.floats(0.02, 1.0), d2=st.floats(0.02, 1.0),
       dev_id=st.sampled_from(["cortex-m4", "titan-x"]), scheme=st.sampled_from(["csr", "group-csr"]))
def test_fewer_weights_never_take_longer_on_analytic_models(d1, d2, dev_id, scheme):
    layer = hwprune.network("alexnet")["fc7"]
    dev = hwprune.device(dev_id)
    lo, hi = sorted((d1, d2))
    assert layer_latency(layer, dev, scheme, lo).cycles <= layer_latency(layer, dev, scheme, hi).cycles


def test_accelerator_gating_saves_no_cycles():
    dev = hwprune.device("eyeriss")
    layer = hwprune.network("alexnet")["conv3"]
    dense = layer_latency(layer, dev, "dense")
    assert layer_latency(layer, dev, "dense", act_density=0.3).parts["compute"] \
        == pytest.approx(dense.parts["compute"])


def test_crossing_finds_a_linear_break_even():
    assert crossing(lambda d: 2 * d, 1.0) == pytest.approx(0.5, abs=0.01)
    assert crossing(lambda d: 0.5, 1.0) == 1.0
    assert math.isnan(crossing(lambda d: 3.0, 1.0))


def test_scalpel_ordering_on_alexnet_conv_csr():
    # The GPU needs the most pruning before CSR pays off, the MCU the least.
    net = hwprune.network("alexnet")
    be = {}
    for d in ("cortex-m4", "titan-x"):
        table = breakeven(net, hwprune.device(d), ("csr",))
        be[d] = table[table["kind"] == "conv"]["breakeven_density"].max()
    assert be["cortex-m4"] > 2 * be["titan-x"]


def test_cpu_model_runs_and_reports_terms():
    df = network_latency(hwprune.network("lenet-300-100"), hwprune.device("core-i7"), "csr", 0.1)
    assert list(df["layer"]) == ["ip1", "ip2", "ip3"]
    assert (df["seconds"] > 0).all()
    assert {"issue_cycles", "stall_cycles", "dram_bandwidth_cycles"} <= set(df.columns)


def test_missing_latency_table_is_a_clear_error(tmp_path):
    text = (hwprune.hardware.builtin_profile_dir() / "core-i7.toml").read_text()
    start = text.index("\n[latency]")
    end = text.index("\n[[memory]]")
    path = tmp_path / "nolat.toml"
    path.write_text(text[:start] + text[end:])
    dev = hwprune.device(str(path))
    with pytest.raises(InputError, match="latency.dense_mac_cycles"):
        layer_latency(hwprune.network("lenet-300-100")["ip3"], dev)


def test_cli_verbs(capsys, tmp_path):
    assert main(["latency", "lenet-5", "--device", "cortex-m4", "--scheme", "csr",
                 "--density", "0.2"]) == 0
    assert "total" in capsys.readouterr().out
    plot = tmp_path / "be.png"
    assert main(["breakeven", "lenet-300-100", "--device", "titan-x", "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 0
    assert main(["breakeven", "lenet-300-100", "--device", "titan-x", "--formats", "zip"]) == 2
    assert "unknown scheme 'zip'" in capsys.readouterr().err


def test_calibration_reads_sizes_and_caches():
    assert _size("32K") == 32768 and _size("8M") == 8 << 20
    caches = host_caches()
    assert caches and all(c.size_bytes > 0 and c.line_bytes > 0 for c in caches)
    assert np.all(np.diff([c.level for c in caches]) > 0)


def test_calibrate_writes_a_loadable_host_profile(tmp_path, capsys):
    out = tmp_path / "host.toml"
    assert main(["calibrate", "--out", str(out)]) == 0
    dev = hwprune.device(str(out))
    assert dev.device_class == "cpu" and "calibrated on host" in dev.name
    assert set(dev.latency) == set(hwprune.hardware.profile.LATENCY_KEYS["cpu"])
    assert all("calibrated on host" in dev.sources[f"latency.{k}"] for k in dev.latency)
    assert layer_latency(hwprune.network("lenet-300-100")["ip1"], dev, "csr", 0.1).seconds > 0
