"""Cortex-M4 latency model (hwprune/latency/mcu.py): each kernel's formula by hand.

Constants of the built-in profile: load 2, pipelined load 1, MAC 1, ALU 1, branch 3,
unroll 4, 8 cycles per output value, 26 per im2col position, flash 7 - 2 = 5 wait
states per 16-byte line, an 8-line (128-byte) flash data cache.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwprune
from hwprune.errors import InputError
from hwprune.latency import kernel_work, layer_latency
from hwprune.latency.mcu import mcu_latency
from hwprune.latency.work import KernelShape

DEV = hwprune.device("cortex-m4")


def _est(shape, scheme, density=1.0):
    return mcu_latency(kernel_work(shape, scheme, density, DEV.compute.simd_lanes), DEV)


def test_dense_matvec_is_cmsis_q15_opt_by_hand():
    # 4 rows x 1 column pair: 5 loads in one run (6) + 4 SMLAD + loop (2 ADD + SUBS + BNE)/4
    body4 = (2 + 4) + 4 + (3 + 3) / 4                       # 11.5 cycles per 8 MACs
    # its 1-row loop: 2 pairs per body, 4 loads (5) + 2 SMLAD + 1.5
    body1 = (2 + 3) + 2 + 1.5
    est = layer_latency(hwprune.network("lenet-300-100")["ip3"], DEV, "dense")   # 10 x 100
    issue = 2 * 50 * body4 + 2 * 25 * body1 + 10 * 8
    assert est.parts["issue"] == pytest.approx(issue)              # 1655
    assert est.parts["flash"] == pytest.approx(2000 / 16 * 5)       # 125 lines x 5 wait states
    assert est.parts["im2col"] == 0
    assert est.cycles == pytest.approx(issue + 625)


def test_dense_conv_is_im2col_and_a_2x2_kernel_by_hand():
    shape = KernelShape(rows=4, cols=18, n=4, kernel=(3, 3))      # C = 2 channels
    est = _est(shape, "dense")
    body = (2 + 3) + 4 + (5 + 3) / 4                              # 4 loads, 4 SMLAD, 4 pointers
    per_pass = 2 * 9 * body + 4 * 2 * 8                           # 2 row blocks, 8 outputs
    assert est.parts["issue"] == pytest.approx(2 * per_pass)       # 2 column pairs
    # per column and kernel position: 26 + one word copied (LDR + STR pipelined, 2)
    assert est.parts["im2col"] == pytest.approx(4 * 9 * (26 + 2))
    # 144 bytes of weights do not fit the 128-byte data cache: 9 lines each pass
    assert est.parts["flash"] == pytest.approx(9 * 5 * 2)


def test_a_small_weight_stream_stays_in_the_flash_data_cache():
    shape = KernelShape(rows=2, cols=16, n=4)                     # a 1x1 layer: no im2col
    est = _est(shape, "dense")
    assert est.parts["im2col"] == 0
    assert est.parts["flash"] == pytest.approx(4 * 5)             # 64 bytes: read once, not twice
    assert est.parts["issue"] == pytest.approx(2 * (8 * 11 + 2 * 2 * 8))


def test_csr_and_simd_group_by_hand():
    shape = KernelShape(rows=8, cols=64, n=1)
    csr = _est(shape, "fine", 0.25)                               # 128 nonzeros
    # LDRH index, LDRH value, gathered LDRH (one run: 4) + SMLABB + loop 1.5
    per_row = 8 + 2 + 1                                           # output + LDR rowptr + SUB
    assert csr.parts["issue"] == pytest.approx(128 * 6.5 + 8 * per_row)
    # values 256 B, indices 256 B, row pointers 36 B: 16 + 16 + 3 lines
    assert csr.parts["flash"] == pytest.approx(35 * 5)
    grp = _est(shape, "simd", 0.25)                               # 64 groups of 2
    # LDRH index, LDR weight pair, LDR gathered input pair (4) + SMLAD + 1.5
    assert grp.parts["issue"] == pytest.approx(64 * 6.5 + 8 * per_row)
    assert grp.parts["flash"] == pytest.approx((16 + 8 + 3) * 5)
    assert grp.cycles < csr.cycles


def test_batch_runs_two_columns_per_pass_without_im2col():
    shape = KernelShape(rows=8, cols=64, n=2, batch=2)
    assert shape.is_fc
    csr = _est(shape, "fine", 0.25)
    # per nonzero: index, value, 2 gathers (one run: 5) + 2 SMLABB + 1.5; one pass
    assert csr.parts["issue"] == pytest.approx(128 * 8.5 + 8 * (2 * 8 + 3))
    assert csr.parts["flash"] == pytest.approx(35 * 5)
    assert csr.parts["im2col"] == 0
    dense1 = _est(KernelShape(rows=8, cols=64, n=1), "dense")
    dense2 = _est(shape, "dense")
    # the weights are reused across the batch: cheaper than two matrix-vector passes
    assert dense1.cycles < dense2.cycles < 2 * dense1.cycles
    assert dense2.parts["flash"] == pytest.approx(dense1.parts["flash"])


def test_compact_gathers_then_runs_the_dense_kernel_by_hand():
    shape = KernelShape(rows=8, cols=64, n=1)
    est = _est(shape, "node", 0.5)                                # 4 rows kept, 64 gathers
    gather = 64 * (2 * 2 + 1 + 1.5)                               # LDRH idx, LDRH x (dependent), STRH
    dense = 32 * 11.5 + 4 * 8
    assert est.parts["issue"] == pytest.approx(gather + dense)
    assert est.parts["flash"] == pytest.approx(32 * 5 + 8 * 5)    # weights 512 B + indices 128 B


def test_an_odd_row_count_runs_the_one_row_loop():
    est = _est(KernelShape(rows=3, cols=200, n=1), "dense")
    assert est.parts["issue"] == pytest.approx(3 * 50 * 8.5 + 3 * 8)


def test_breakeven_is_where_cmsis_class_dense_puts_it():
    # dense fc at about 2.1 cycles per MAC (1.45 issue + 0.625 flash), CSR at about 8 per
    # nonzero: the break-even falls from 0.39 (the naive dense loop) to about 0.27
    net = hwprune.network("lenet-300-100")
    table = hwprune.latency.breakeven(net, DEV, ("fine", "simd"))
    fine = table[table["scheme"] == "fine"]["breakeven_density"].astype(float)
    simd = table[table["scheme"] == "simd"]["breakeven_density"].astype(float)
    assert fine.between(0.2, 0.32).all() and simd.between(0.4, 0.6).all()
    ip1 = net["ip1"]
    assert layer_latency(ip1, DEV, "dense").cycles / (784 * 300) < 2.2


@settings(max_examples=25, deadline=None)
@given(d1=st.floats(0.01, 1.0), d2=st.floats(0.01, 1.0),
       scheme=st.sampled_from(["fine", "simd", "node", "filter", "vector", "kernel"]),
       layer=st.sampled_from([("lenet-5", "conv1"), ("lenet-5", "ip2"), ("lenet-300-100", "ip3")]),
       batch=st.sampled_from([1, 3]))
def test_fewer_weights_never_take_longer(d1, d2, scheme, layer, batch):
    lay = hwprune.network(layer[0])[layer[1]]
    lo, hi = sorted((d1, d2))
    assert layer_latency(lay, DEV, scheme, lo, batch=batch).cycles \
        <= layer_latency(lay, DEV, scheme, hi, batch=batch).cycles


def test_a_profile_without_a_new_key_names_it(tmp_path):
    text = (hwprune.hardware.builtin_profile_dir() / "cortex-m4.toml").read_text()
    text = "\n".join(line for line in text.splitlines()
                     if not line.startswith("pipelined_load_cycles ="))
    path = tmp_path / "m4.toml"
    path.write_text(text)
    with pytest.raises(InputError, match="latency.pipelined_load_cycles"):
        layer_latency(hwprune.network("lenet-300-100")["ip3"], hwprune.device(str(path)))


def test_helium_kernels_by_hand():
    """cortex-m55 (latency/mve.py), counted by hand from the profile's costs: VLDRB 2 and
    VMLADAVA 2 cycles on overlapping pipes, row_cycles 12, branch 4, a scalar load 1,
    the MRAM's 12 wait states per 32-byte line."""
    dev = hwprune.device("cortex-m55")
    # 4 rows x 16 int8 columns: one body max(5 loads x 2, 4 MACs x 2) = 10, 4 x 12 per
    # output; 64 weight bytes = 2 lines x 12 wait states
    dense = mcu_latency(kernel_work(KernelShape(rows=4, cols=16, n=1), "dense", 1.0, 16), dev)
    assert dense.parts == {"issue": 10 + 4 * 12, "im2col": 0.0, "flash": 2 * 12}
    # CSR, 8 nonzeros: index and weight vectors (2 x 2) + an 8-element gather (8) = 12;
    # per row 12 + row pointer 1 + loop start 4; values, indices and pointers 1 line each
    csr = mcu_latency(kernel_work(KernelShape(rows=1, cols=16, n=1), "fine", 0.5, 16), dev)
    assert csr.parts == {"issue": 12 + 17, "im2col": 0.0, "flash": 3 * 12}
    # a 16-wide SIMD group: scalar index 1 + weight and input vectors 2 x 2 = 5
    simd = mcu_latency(kernel_work(KernelShape(rows=1, cols=32, n=1), "simd", 0.5, 16), dev)
    assert simd.parts["issue"] == 5 + 17
    # the same layer on the q15 Cortex-M4 model is far slower per cycle
    m4 = mcu_latency(kernel_work(KernelShape(rows=4, cols=16, n=1), "dense", 1.0, 2),
                     hwprune.device("cortex-m4"))
    assert m4.parts["issue"] > dense.parts["issue"]
