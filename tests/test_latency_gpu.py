"""The GPU latency model (hwprune/latency/gpu.py): hand-computed cases of each kernel,
tiles and waves, published Titan X measurements it reproduces, bad profile values."""

import math

import pytest

import hwprune
from hwprune.errors import InputError
from hwprune.latency import KernelShape, kernel_work, layer_latency
from hwprune.latency.gpu import gpu_latency

DEV = hwprune.device("titan-x")
DRAM = 336.5 * 0.84          # bytes per cycle at 1.0 GHz, times dram_efficiency
L2 = 1024.0                  # L2 bytes per cycle
RT_DRAM, RT_L2 = 370, 210    # round trips, cycles
ISSUE = 24 * 4               # warp instructions per cycle (24 SMs x 4 schedulers)


def run(shape, scheme, density=1.0):
    return gpu_latency(kernel_work(shape, scheme, density, DEV.compute.simd_lanes), DEV)


def test_dense_gemv_by_hand():
    est = run(KernelShape(100, 256, 1), "dense")
    # One warp per row, 2 steps of 128 weights (LDG.128 per lane), 9 instructions a
    # step + 12 per row; each step waits one DRAM round trip.
    assert est.parts["latency"] == pytest.approx(2 * RT_DRAM + 2 * 9 + 12)
    assert est.parts["dram"] == pytest.approx((100 * 256 + 256 + 100) * 4 / DRAM)
    assert est.parts["l2"] == pytest.approx((100 * 256 * 4 + 100 * 1024) / L2)
    assert est.parts["issue"] == pytest.approx(100 * 30 / ISSUE)
    assert est.cycles == pytest.approx(5000 + 770) and est.bound == "latency"


def test_csr_vector_csrmv_by_hand():
    est = run(KernelShape(100, 256, 1), "fine", 0.25)
    # 64 stored per row: 32 lanes a row, 2 steps; a step waits for the index (DRAM)
    # and then the gathered x (L2); 9 instructions a step + 6 + 2 log2(32) per row.
    per_warp = 2 * 9 + 6 + 2 * 5
    assert est.parts["latency"] == pytest.approx(2 * (RT_DRAM + RT_L2) + per_warp)
    # values + indices + row pointers + x + y cross DRAM once
    assert est.parts["dram"] == pytest.approx((6400 * 8 + 101 * 4 + 356 * 4) / DRAM)
    # coalesced values and indices (1600 sectors) + gathers: 1/(8 x 0.25) -> half a
    # sector per stored value at row density 1/4
    assert est.parts["l2"] == pytest.approx((1600 + 3200) * 32 / L2)
    assert est.cycles == pytest.approx(5000 + 2 * 580 + per_warp)


def test_few_stored_values_use_fewer_lanes_per_row():
    # 4 stored per row: 4 lanes a row (CUSP's CSR-vector), 8 rows per warp, 1 step.
    est = run(KernelShape(64, 256, 1), "fine", 4 / 256)
    per_warp = 9 + 6 + 2 * 2
    assert est.parts["issue"] == pytest.approx(8 * per_warp / ISSUE)
    assert est.parts["latency"] == pytest.approx(RT_DRAM + RT_L2 + per_warp)


def test_group_csrmv_loads_a_group_per_step():
    est = run(KernelShape(64, 256, 1), "simd", 0.5)      # groups of 32 = one warp
    # 8 groups per row, 4 kept: 4 steps, each one index, 32 values, 4 sectors of x
    assert est.parts["latency"] == pytest.approx(4 * (RT_DRAM + RT_L2) + 4 * 9 + 6 + 10)
    stream = math.ceil((8192 * 4 + 256 * 4) / 32)
    assert est.parts["l2"] == pytest.approx((stream + 256 * 4) * 32 / L2)


def test_dense_convolution_tiles_and_waves_by_hand():
    # M=64 filters, K=288 (32 x 3 x 3), N=100 positions. A 32x128 tile is 2 warps
    # (8x8 outputs a thread): it issues 2 of the SM's 4 FFMA/cycle at 0.59 -> 37.76
    # MAC/cycle; 2 tiles. Splitting K in 2 gives slices of 144; in 3, of 96, charged as
    # one 128-deep slice (the shallowest slice priced): 6 slices < 48 slots, 1 wave.
    est = run(KernelShape(64, 288, 100, 1, (3, 3)), "dense")
    rate = 128 * 0.59 * 2 / 4
    assert est.parts["compute"] == pytest.approx(32 * 128 * 128 / rate + RT_DRAM)
    assert est.cycles == pytest.approx(5000 + 32 * 128 * 128 / rate + RT_DRAM)
    assert est.bound == "compute"


def test_a_node_pruned_convolution_is_never_slower_by_hand():
    # LeNet-5 conv2 (50 filters, K = 20 x 5 x 5 = 500, 8 x 8 positions) against 18 filters
    # on 9 input channels (K = 225). Before: the full layer split K in 3 (167 deep) while
    # the pruned one could not split (225 // 128 = 1): 225 deep, slower. Now both pick a
    # 32x128 tile and a 128-deep slice (K in 4, and in 2): the same time.
    rate = 128 * 0.59 * 2 / 4
    full = run(KernelShape(50, 500, 64, 1, (5, 5)), "dense")
    pruned = run(KernelShape(18, 225, 64, 1, (5, 5)), "dense")
    assert full.parts["compute"] == pytest.approx(32 * 128 * 128 / rate + RT_DRAM)
    assert pruned.parts["compute"] == pytest.approx(full.parts["compute"])
    assert pruned.cycles <= full.cycles


@pytest.mark.parametrize("kernel", [(1, 1), (3, 3)])
def test_a_smaller_dense_product_never_costs_more(kernel):
    # The fastest configuration of a smaller problem is never slower than the larger
    # problem's (which it can run padded): shrink M, K or N one at a time.
    sizes = [(m, k, n) for m in (1, 17, 50, 128, 200, 513) for k in (9, 100, 225, 500, 1300)
             for n in (1, 8, 64, 100, 784)]
    for m, k, n in sizes:
        big = run(KernelShape(m, k, n, 1, kernel, n if kernel == (1, 1) else 1), "dense").cycles
        for m2, k2, n2 in ((max(1, m // 2), k, n), (m, max(1, k // 3), n), (m, k, max(1, n // 2))):
            shape = KernelShape(m2, k2, n2, 1, kernel, n2 if kernel == (1, 1) else 1)
            assert run(shape, "dense").cycles <= big * (1 + 1e-12), (m, k, n, m2, k2, n2)


def test_under_occupied_layers_pay_a_whole_wave():
    # Fewer tiles than SMs: 16 or 64 filters give the same time (idle SMs), not 4x.
    small = run(KernelShape(16, 288, 100, 1, (3, 3)), "dense")
    large = run(KernelShape(64, 288, 100, 1, (3, 3)), "dense")
    assert small.parts["compute"] == pytest.approx(large.parts["compute"])
    # With many tiles the time grows with the work: 4 waves of 128x128 tiles.
    big = run(KernelShape(512, 1152, 3072, 1, (3, 3)), "dense")   # 4 x 24 tiles = 4 waves
    assert big.parts["compute"] == pytest.approx(4 * (128 * 128 * 1152 / (128 * 0.59) + RT_DRAM))


def test_sparse_convolution_is_im2col_then_csrmm_by_hand():
    est = run(KernelShape(64, 288, 100, 1, (3, 3)), "fine", 0.5)
    # 144 stored per row, 5 chunks of 32; 64 rows x 4 warps of 32 positions;
    # 4 instructions per stored value + 1 per index + 5 per chunk + 12 per warp
    per_warp = 144 * 5 + 5 * 5 + 12
    assert est.parts["issue"] == pytest.approx(256 * per_warp / ISSUE)
    assert est.parts["latency"] == pytest.approx(5 * (RT_DRAM + RT_L2) + per_warp)
    # every stored value re-reads a 100-element row of the lowered matrix: 13 sectors
    stream = math.ceil((9216 * 8 + 65 * 4) / 32)
    assert est.parts["l2"] == pytest.approx((stream + 9216 * 13) * 32 / L2)
    # im2col reads the input (288 x 100 / 9) and writes the lowered matrix, own launch
    assert est.parts["im2col"] == pytest.approx((28800 + 3200) * 4 / DRAM)
    assert est.cycles == pytest.approx(2 * 5000 + est.parts["im2col"] + est.parts["l2"])


def test_fc_at_batch_8_is_a_cublas_gemm_and_a_csrmm():
    shape = KernelShape(256, 512, 8, 1, (1, 1), 8)
    dense = run(shape, "dense")
    # cuBLAS tiles from 128x64 (4 warps, the whole SM at 0.81): a 64x128 tile over
    # 4 row tiles, K split in 4 -> 16 slices on 24 SMs, one wave
    assert dense.parts["compute"] == pytest.approx(64 * 128 * 128 / (128 * 0.81) + RT_DRAM)
    sparse = run(shape, "fine", 0.25)
    assert "im2col" not in sparse.parts and sparse.parts["launch"] == 5000
    per_warp = 128 * 5 + 4 * 5 + 12           # 128 stored per row, 4 chunks, 1 warp a row
    assert sparse.parts["issue"] == pytest.approx(256 * per_warp / ISSUE)


def test_reproduces_published_titan_x_times():
    # Baidu DeepBench, GTX Titan X (Maxwell): SGEMM 5124 x 9124 x 2048 took 39.805 ms;
    # the cuDNN 7x7/2 convolution 224x224x3 -> 64, batch 16 took 1.016 ms.
    gemm = run(KernelShape(5124, 2048, 9124, 1, (1, 1), 9124), "dense")
    assert (gemm.cycles - 5000) / 1e9 == pytest.approx(39.805e-3, rel=0.05)
    conv = run(KernelShape(64, 147, 112 * 112 * 16, 1, (7, 7), 16), "dense")
    assert (conv.cycles - 5000) / 1e9 == pytest.approx(1.016e-3, rel=0.1)


def test_fine_pruning_slows_alexnet_convolutions_down():
    # Scalpel's GPU finding at Han et al.'s densities: CSR convolutions are slower
    # than cuDNN, the fc layers faster.
    net = hwprune.network("alexnet")
    for name, density in (("conv2", 0.38), ("conv3", 0.35)):
        assert layer_latency(net[name], DEV, "fine", density).cycles > \
            layer_latency(net[name], DEV, "dense").cycles
    assert layer_latency(net["fc6"], DEV, "fine", 0.09).cycles < \
        layer_latency(net["fc6"], DEV, "dense").cycles


@pytest.mark.parametrize("key", ["conv_efficiency", "dram_efficiency"])
def test_an_efficiency_above_one_is_refused(tmp_path, key):
    text = (hwprune.hardware.builtin_profile_dir() / "titan-x.toml").read_text()
    line = next(x for x in text.splitlines() if x.startswith(key + " ="))
    path = tmp_path / "gpu.toml"
    path.write_text(text.replace(line, f"{key} = 1.5").replace('id = "titan-x"', 'id = "gpu-x"'))
    with pytest.raises(InputError, match=f"latency.{key} must be a fraction"):
        run_on = hwprune.device(str(path))
        gpu_latency(kernel_work(KernelShape(10, 10, 1), "dense", 1.0), run_on)


def _validate_gpu():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "validate_gpu.py"
    spec = importlib.util.spec_from_file_location("validate_gpu", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_deepbench_points_are_read_and_priced(tmp_path):
    # The committed DeepBench Titan X data (benchmarks/data) is complete and each row prices
    # through dense_kernel_terms: the 5124 x 9124 x 2048 SGEMM (sheet row 52) measured
    # 39.805 ms, the model within 5%.
    mod = _validate_gpu()
    rows = mod.load(mod.DATA)
    assert sum(r["kind"] == "gemm" for r in rows) == 160 and sum(r["kind"] == "conv" for r in rows) == 94
    row = next(r for r in rows if (r["kind"], r["m"], r["n"], r["k"], r["a_transpose"]) ==
               ("gemm", "5124", "9124", "2048", "N"))
    assert float(row["time_ms"]) == 39.805
    assert mod.predict(DEV, row)[0] == pytest.approx(39.805, rel=0.05)
    out = tmp_path / "gpu.csv"
    assert mod.main(["--quiet", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1 + 144


def test_dense_kernel_terms_refuses_an_empty_product():
    from hwprune.latency.gpu import dense_kernel_terms

    with pytest.raises(InputError, match="m, n, k >= 1"):
        dense_kernel_terms(DEV, 0, 8, 8, convolution=False)
