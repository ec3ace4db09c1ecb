"""Accelerator latency: systolic folds (SCALE-Sim's accounting), partial folds on a
spatial array, multicast on the network-on-chip, batch, monotone density."""

from pathlib import Path

import numpy as np
import pytest

import hwprune
from hwprune.errors import InputError, ProfileError, UnknownNameError
from hwprune.latency import layer_latency
from hwprune.latency.accelerator import _noc_transfers, accelerator_latency, spatial_folds
from hwprune.latency.systolic import Gemm, systolic_layer, systolic_run
from hwprune.latency.work import KernelShape, kernel_work
from hwprune.workload.layer import Layer
from hwprune.workload.ops import Conv2d

SYSTOLIC = Path(__file__).resolve().parents[1] / "benchmarks" / "systolic-32x32.toml"

# A 3x3 convolution of a 5 x 10 x 10 input into 7 maps: E = F = 8, so the operand
# matrices are P = 64 pixels, K = 5 * 3 * 3 = 45 window elements, M = 7 filters.
SMALL = Layer("small", Conv2d(7, (3, 3)), ("input",), ((5, 10, 10),), (7, 8, 8))


def test_small_layer_on_a_4x4_array_by_hand():
    assert Gemm.of(SMALL) == Gemm(pixels=64, window=45, filters=7)
    # ws: K down the rows (ceil(45/4) = 12 folds, the last 1 of 4 rows used), M across
    # (ceil(7/4) = 2, the last 3 of 4 columns); a fold loads the weights (4 cycles),
    # streams the 64 pixels, fills the skew (3) and drains the columns (3): 74 cycles.
    ws = systolic_layer(SMALL, 4, 4, "weight-stationary")
    assert (ws.row_folds, ws.col_folds, ws.fold_cycles, ws.cycles) == (12, 2, 74, 24 * 74)
    assert (ws.ifmap_reads, ws.filter_reads, ws.ofmap_writes) == (64 * 45 * 2, 45 * 7, 64 * 7 * 12)
    # os: P down the rows (16 folds), M across (2); 45 streaming cycles + 3 + 3 skew.
    os_ = systolic_layer(SMALL, 4, 4, "os")
    assert (os_.row_folds, os_.col_folds, os_.fold_cycles, os_.cycles) == (16, 2, 51, 32 * 51)
    assert (os_.ifmap_reads, os_.filter_reads, os_.ofmap_writes) == (64 * 45 * 2, 45 * 7 * 16, 64 * 7)
    # is: K down the rows (12), P across (16); load 4 + stream 7 filters + 3 + 3 = 17.
    is_ = systolic_layer(SMALL, 4, 4, "input-stationary")
    assert (is_.row_folds, is_.col_folds, is_.fold_cycles, is_.cycles) == (12, 16, 17, 192 * 17)
    assert (is_.ifmap_reads, is_.filter_reads, is_.ofmap_writes) == (64 * 45, 45 * 7 * 16, 64 * 7 * 12)
    # These are SCALE-Sim 3.0.0's numbers for this layer (its cycles are one less: it
    # reports the last cycle's index; its os ofmap counter adds 4 + 4 per fold).
    assert ws.utilization == pytest.approx(64 * 45 * 7 / (1776 * 16))


def test_groups_run_one_after_another():
    grouped = Layer("g", Conv2d(8, (3, 3), groups=2), ("input",), ((6, 10, 10),), (8, 8, 8))
    assert Gemm.of(grouped) == Gemm(pixels=64, window=27, filters=4, groups=2)
    one = systolic_run(Gemm(64, 27, 4), 4, 4, "ws")
    two = systolic_layer(grouped, 4, 4, "ws")
    assert (two.cycles, two.ifmap_reads, two.ofmap_writes) == (
        2 * one.cycles, 2 * one.ifmap_reads, 2 * one.ofmap_writes)


def test_alexnet_conv1_folds_363_rows_with_a_partial_fold():
    dev = hwprune.device(str(SYSTOLIC))
    conv1 = hwprune.network("alexnet")["conv1"]
    # C*R*S = 363 = 11 x 32 + 11: 12 row folds, the last one with 11 of 32 rows busy;
    # 96 filters: 3 column folds; each fold 2*32 + 32 + 3025 - 2 = 3119 cycles.
    run = systolic_layer(conv1, 32, 32, "ws")
    assert (run.row_folds, run.col_folds, run.fold_cycles) == (12, 3, 3119)
    est = layer_latency(conv1, dev, "dense")
    assert est.parts["compute"] == 36 * 3119 == 112_284
    # 2.7x fewer than the 299,475 cycles of a divisor-only unrolling (11 x 32 PEs).
    assert 299_475 / est.parts["compute"] == pytest.approx(2.67, abs=0.01)
    # The SRAM term moves SCALE-Sim's counts: 3,294,225 + 34,848 + 3,484,800 bytes
    # at 96 bytes per cycle.
    assert est.parts["SRAM"] == pytest.approx((3_294_225 + 34_848 + 3_484_800) / 96)


def test_partial_folds_on_a_spatial_array():
    # 13 output channels on a 4-wide axis: 4 folds (4 + 4 + 4 + 1), not 1 PE of 13.
    work, p, used = spatial_folds((1, 13, 1, 1, 1, 1, 1), (("M",),), (4,))
    assert (work, p[1], used) == (4.0, 4, (4,))
    # On a 12-wide axis 7 PEs give the same 2 folds as 12: the fewer are kept.
    work, p, used = spatial_folds((1, 13, 1, 1, 1, 1, 1), (("M",),), (12,))
    assert (work, p[1]) == (2.0, 7)
    # Eyeriss row-stationary, AlexNet conv1 (N M C E F R S = 1 96 3 55 55 11 11) on
    # 12 x 14: M unrolled 24 (12 rows x 2 columns, 4 folds) and E 7 on the other 7
    # columns (ceil(55/7) = 8 folds, the last with 6 of 7 busy); C, F, R, S temporal:
    # 4 x 8 x 3 x 55 x 11 x 11 = 638,880 cycles, fewer than R 11 down the rows and E 14
    # across (4 x 96 x 3 x 55 x 11 = 696,960).
    work, p, used = spatial_folds((1, 96, 3, 55, 55, 11, 11), (("R", "C", "M"), ("E", "N", "M")),
                                  (12, 14))
    assert (work, p, used) == (4 * 8 * 3 * 55 * 11 * 11, (1, 24, 1, 7, 1, 1, 1), (12, 14))
    assert work < 696_960


def test_eyeriss_fill_and_drain_are_counted():
    dev = hwprune.device("eyeriss")
    fc = hwprune.network("lenet-300-100")["ip3"]          # 10 x 100
    est = layer_latency(fc, dev, "dense")
    work, _, used = spatial_folds((1, 10, 100, 1, 1, 1, 1), (("R", "C", "M"), ("E", "N", "M")),
                                  (12, 14))
    assert est.parts["compute"] == work + sum(u - 1 for u in used)
    assert sum(u - 1 for u in used) > 0


def test_multicast_is_one_transfer_per_value():
    dev = hwprune.device("eyeriss")                       # storage RF, GLB, DRAM; NoC row 3
    acc = np.zeros((4, 3, 2))
    acc[3, 0, 0], acc[1, 0, 0] = 1000.0, 100.0          # weights: 1000 copies of 100 values
    acc[3, 1, 0], acc[1, 1, 0] = 500.0, 400.0           # inputs: 500 copies of 400 values
    acc[3, 2, 0] = 30.0                                 # partial sums passed PE to PE
    assert dev.latency["noc_multicast_fanout"] == 168
    assert _noc_transfers(acc, dev, 1.0) == (100.0 + 400.0, 30.0)
    text = (hwprune.hardware.builtin_profile_dir() / "eyeriss.toml").read_text()
    unicast = hwprune.device(_write(text.replace("noc_multicast_fanout = 168",
                                                 "noc_multicast_fanout = 1")))
    assert _noc_transfers(acc, unicast, 1.0) == (1500.0, 30.0)
    narrow = hwprune.device(_write(text.replace("noc_multicast_fanout = 168",
                                                "noc_multicast_fanout = 4")))
    assert _noc_transfers(acc, narrow, 1.0) == (250.0 + 400.0, 30.0)


def _write(text: str) -> str:
    import tempfile
    path = Path(tempfile.mkdtemp()) / "dev.toml"
    path.write_text(text)
    return str(path)


def test_eyeriss_conv_layers_are_no_longer_noc_bound():
    dev = hwprune.device("eyeriss")
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        est = layer_latency(hwprune.network("alexnet")[name], dev, "dense")
        assert est.bound != "Array", (name, dict(est.parts))
        # psums on the local links; the global buses carry one copy of each value
        assert est.parts["Array_links"] < est.parts["Array"]


def test_batch_reuses_weights_on_the_systolic_array():
    fc = hwprune.network("alexnet")["fc8"]                 # 1000 x 4096
    one, four = systolic_layer(fc, 32, 32, "ws", batch=1), systolic_layer(fc, 32, 32, "ws", batch=4)
    assert four.filter_reads == one.filter_reads == 4096 * 1000
    assert (four.row_folds, four.col_folds) == (128, 32)
    assert four.cycles == 128 * 32 * (2 * 32 + 32 + 4 - 2)
    dev = hwprune.device(str(SYSTOLIC))
    work = kernel_work(KernelShape.of(fc, 4), "dense", 1.0, 1)
    assert accelerator_latency(work, fc, dev).parts["compute"] == four.cycles


def test_density_never_raises_eyeriss_latency():
    dev = hwprune.device("eyeriss")
    layer = hwprune.network("lenet-300-100")["ip1"]
    grid = [1.0, 0.8, 0.55, 0.4, 0.3, 0.2, 0.13, 0.09, 0.05, 0.02, 0.01]
    for s in ("fine", "simd", "node"):
        cycles = [layer_latency(layer, dev, s, d).cycles for d in grid]
        assert all(b <= a * (1 + 1e-12) for a, b in zip(cycles, cycles[1:])), (s, cycles)


def test_bad_inputs_name_what_is_accepted():
    with pytest.raises(UnknownNameError, match="input-stationary"):
        systolic_run(Gemm(4, 4, 4), 4, 4, "row-stationary")
    with pytest.raises(InputError, match="rows and cols"):
        systolic_run(Gemm(4, 4, 4), 0, 4, "ws")
    text = (hwprune.hardware.builtin_profile_dir() / "eyeriss.toml").read_text()
    with pytest.raises(ProfileError, match="noc_multicast_fanout"):
        hwprune.device(_write(text.replace("noc_multicast_fanout = 168", "noc_multicast_fanout = 0")))
