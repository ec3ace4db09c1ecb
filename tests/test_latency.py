"""Latency models: hand-computed cases, invariants, CLI, calibration pieces."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwprune
from hwprune.calibrate import matvec_fit
from hwprune.calibrate.host import _size, host_caches
from hwprune.calibrate.matvec_fit import FORMATS, TimedPoint, best_seconds, fit_matvec
from hwprune.cli import main
from hwprune.errors import InputError, ProfileError
from hwprune.latency import breakeven, kernel_work, layer_latency, network_latency
from hwprune.latency.cpu import cpu_latency
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
    # kernel-row groups of a fully connected layer are single weights: it runs as fine
    vec = kernel_work(shape, "vector", 0.5)
    assert vec.scheme.name == "fine" and vec.stored == kernel_work(shape, "csr", 0.5).stored
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        kernel_work(shape, "csr", 0.0)


def test_mcu_dense_fc_by_hand():
    dev = hwprune.device("cortex-m4")
    layer = hwprune.network("lenet-300-100")["ip3"]        # 10 x 100
    est = layer_latency(layer, dev, "dense")
    # arm_fully_connected_q15_opt: 2 blocks of 4 rows x 50 column pairs, each 5 loads in one
    # run (6) + 4 SMLAD + loop (2 ADD + SUBS + BNE 3) / 4; 2 left-over rows of 25 bodies of
    # 4 loads (5) + 2 SMLAD + 1.5; 8 cycles per output. Flash: 2000 B / 16 x 5 wait states
    issue = 2 * 50 * (6 + 4 + 1.5) + 2 * 25 * (5 + 2 + 1.5) + 10 * 8
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
    # The GPU needs the most pruning before CSR pays off, the MCU the least: on the GPU
    # every AlexNet convolution needs more pruning than on the MCU, and below 25% density.
    net = hwprune.network("alexnet")
    be = {}
    for d in ("cortex-m4", "titan-x"):
        table = breakeven(net, hwprune.device(d), ("csr",))
        be[d] = table[table["kind"] == "conv"].set_index("layer")["breakeven_density"]
    assert (be["cortex-m4"] > be["titan-x"]).all()
    assert be["titan-x"].max() < 0.25


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
    assert main(["calibrate", "--quick", "--out", str(out)]) == 0
    dev = hwprune.device(str(out))
    assert dev.device_class == "cpu" and "calibrated on host" in dev.name
    assert set(dev.latency) == set(hwprune.hardware.profile.LATENCY_KEYS["cpu"])
    assert all("calibrated on host" in dev.sources[f"latency.{k}"] for k in dev.latency)
    assert "fit set" in dev.sources["latency.csr_row_cycles"]
    sizes = [f for f, _ in dev.stream_bandwidth]
    assert len(sizes) >= 4 and sizes == sorted(sizes)
    assert "calibrated on host" in dev.sources["stream_bandwidth.bytes_per_cycle"]
    assert layer_latency(hwprune.network("lenet-300-100")["ip1"], dev, "csr", 0.1).seconds > 0


# ----------------------------------------------------------------- calibrated host model

CORE_I7 = (hwprune.hardware.builtin_profile_dir() / "core-i7.toml").read_text()
HOST_LATENCY = """
dense_row_cycles = 2
dense_call_cycles = 100
dense_overlap = 0.25
csr_row_cycles = 10
csr_call_cycles = 0
csr_overlap = 0.5
"""
CURVE = """
[stream_bandwidth]
footprint_bytes = [1000, 100000, 10000000]
bytes_per_cycle = [40, 10, 4]

[stream_bandwidth.sources]
footprint_bytes = "test"
bytes_per_cycle = "test"
"""


def host_profile(tmp_path, latency=HOST_LATENCY, curve=CURVE, name="host.toml"):
    text = CORE_I7.replace('id = "core-i7"', 'id = "host-test"')
    for line in latency.strip().splitlines():          # the test's value replaces the profile's
        key = line.split("=")[0].strip()
        text = "\n".join(t for t in text.split("\n") if not t.startswith(key + " = ")
                         or "latency.sources" in t)
    text = text.replace("[latency]\n", "[latency]\n" + latency.strip() + "\n", 1) + curve
    path = tmp_path / name
    path.write_text(text)
    return hwprune.device(str(path))


def test_stream_bandwidth_interpolates_in_log_footprint(tmp_path):
    dev = host_profile(tmp_path)
    assert dev.stream_bytes_per_cycle(10) == 40 and dev.stream_bytes_per_cycle(1e9) == 4
    assert dev.stream_bytes_per_cycle(10_000) == pytest.approx(25.0)       # halfway in log
    assert dev.stream_bytes_per_cycle(1_000_000) == pytest.approx(7.0)
    with pytest.raises(InputError, match="no stream_bandwidth curve"):
        hwprune.device("core-i7").stream_bytes_per_cycle(1000)


def test_dense_matvec_on_a_curve_by_hand(tmp_path):
    dev = host_profile(tmp_path)
    est = cpu_latency(kernel_work(KernelShape(rows=100, cols=200, n=1), "dense", 1.0), dev)
    # core: 20 000 MACs x 0.078125 (BLAS GEMV: 5 loads per 32 MACs) + 100 rows x 2 + one
    # call 100 = 1 862.5 cycles (no gathers)
    core = 20_000 * 0.078125 + 100 * 2 + 100
    # memory: W 80 000 B + x 800 + y 400 = 81 200 B, between the curve's 1 000 B (40 B/cycle)
    # and 100 000 B (10 B/cycle) points, linear in log(footprint)
    moved = 20_000 * 4 + 200 * 4 + 100 * 4
    rate = 40 + (10 - 40) * math.log(moved / 1000) / math.log(100)
    memory = moved / rate
    assert est.parts["stall"] == 0 and est.parts["issue"] == pytest.approx(core)
    assert est.parts["stream_bandwidth"] == pytest.approx(memory)
    assert est.cycles == pytest.approx(max(core, memory) + 0.75 * min(core, memory))


def test_overlap_moves_csr_between_roofline_and_sum(tmp_path):
    shape = KernelShape(rows=256, cols=1024, n=1)
    sums = host_profile(tmp_path, HOST_LATENCY.replace("csr_overlap = 0.5", "csr_overlap = 0"),
                        name="a.toml")
    roof = host_profile(tmp_path, HOST_LATENCY.replace("csr_overlap = 0.5", "csr_overlap = 1"),
                        name="b.toml")
    half = host_profile(tmp_path, name="c.toml")
    a, b, c = (cpu_latency(kernel_work(shape, "csr", 0.2), d) for d in (sums, roof, half))
    core = a.parts["issue"] + a.parts["stall"]
    memory = a.parts["stream_bandwidth"]
    assert a.cycles == pytest.approx(core + memory)
    assert b.cycles == pytest.approx(max(core, memory))
    assert c.cycles == pytest.approx((a.cycles + b.cycles) / 2)
    assert a.parts["issue"] == pytest.approx(round(0.2 * 256 * 1024) * 1.5 + 256 * 10)


@pytest.mark.parametrize("latency, curve, key, reason", [
    ("csr_overlap = 1.5", CURVE, "latency.csr_overlap", "fraction in [0, 1]"),
    ("csr_row_cycles = 0", CURVE, "latency.csr_row_cycles", "a number > 0"),
    ("", CURVE.replace("[1000, 100000, 10000000]", "[1000, 100, 10000000]"),
     "stream_bandwidth.footprint_bytes", "must increase"),
    ("", CURVE.replace("[40, 10, 4]", "[40, 10]"), "stream_bandwidth.bytes_per_cycle",
     "one value per footprint_bytes"),
    ("", CURVE.replace("[40, 10, 4]", "[40, 0, 4]"), "stream_bandwidth.bytes_per_cycle",
     "numbers > 0"),
    ("", CURVE + "colour = 1\n", "stream_bandwidth.sources.colour", "names no numeric key"),
])
def test_bad_host_profiles_name_the_key(tmp_path, latency, curve, key, reason):
    with pytest.raises(ProfileError) as info:
        host_profile(tmp_path, latency, curve)
    assert info.value.key == key and reason in info.value.reason


def test_only_cpu_profiles_take_a_curve(tmp_path):
    text = (hwprune.hardware.builtin_profile_dir() / "titan-x.toml").read_text()
    path = tmp_path / "gpu.toml"
    path.write_text(text.replace('id = "titan-x"', 'id = "gpu-test"') + CURVE)
    with pytest.raises(ProfileError, match="only a cpu profile"):
        hwprune.device(str(path))


@pytest.mark.parametrize("min_seconds, best, calls", [(0, 3, 4), (14, 1, 5)])
def test_best_seconds_takes_the_fastest_of_spread_calls(monkeypatch, min_seconds, best, calls):
    clock = [0.0]
    monkeypatch.setattr(matvec_fit, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    durations = iter([5, 3, 4, 6, 1, 2, 7])          # the first call warms up, untimed
    made = []

    def fn():
        made.append(1)
        clock[0] += next(durations)
    assert best_seconds(fn, repeats=3, min_seconds=min_seconds) == best
    assert len(made) == calls


def test_fit_recovers_the_model_it_was_given(tmp_path):
    """Times made by the model on a known profile are fitted back: the fitted profile
    predicts held-out points within 1% (compact within 5%: it reuses dense's fitted
    cost per MAC, which the fit may split differently between MACs and memory)."""
    truth = host_profile(tmp_path, HOST_LATENCY + "group_row_cycles = 6\ngroup_overlap = 0.8\n"
                         "compact_row_cycles = 3\ncompact_call_cycles = 50\ncompact_overlap = 0"
                         "\ngroup_call_cycles = 20\n", name="truth.toml")
    start = host_profile(tmp_path, "", name="start.toml")

    def timed(shapes, densities):
        return [TimedPoint(s, r, c, d, cpu_latency(kernel_work(KernelShape(r, c, 1), s, d, 8),
                                                   truth).seconds)
                for r, c in shapes for s in FORMATS for d in (densities if s != "dense" else (1.0,))]
    fit = fit_matvec(timed(((32, 256), (96, 512), (200, 64), (16, 2048)), (1.0, 0.3, 0.05)),
                     start)
    assert set(fit) >= {"csr_nnz_cycles", "dense_overlap", "compact_call_cycles"}
    text = "\n".join(line for line in (tmp_path / "start.toml").read_text().split("\n")
                     if line.split(" = ")[0] not in fit)       # the fitted values replace these
    text = text.replace(
        "[latency]\n", "[latency]\n" + "\n".join(f"{k} = {v!r}" for k, v in fit.items()) + "\n", 1)
    (tmp_path / "fitted.toml").write_text(text.replace('id = "host-test"', 'id = "fitted"'))
    fitted = hwprune.device(str(tmp_path / "fitted.toml"))
    for p in timed(((48, 384), (128, 128)), (0.7, 0.1)):
        est = cpu_latency(kernel_work(KernelShape(p.rows, p.cols, 1), p.scheme, p.density, 8), fitted)
        assert est.seconds == pytest.approx(p.seconds, rel=0.05 if p.scheme == "compact" else 0.01), p
