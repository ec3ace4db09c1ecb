"""cpu latency model: BLAS GEMM/GEMV baseline, SpMM, the stall envelope, the batch,
and the calibration pieces (hand-computed cases; no timing assertions)."""

import math

import numpy as np
import pytest

import hwprune
from hwprune.calibrate import host, matvec_fit
from hwprune.errors import InputError, ProfileError
from hwprune.latency import cpu
from hwprune.latency.cpu import cpu_latency, gather_stall, gemm, memory_terms
from hwprune.latency.work import KernelShape, kernel_work


@pytest.fixture(scope="module")
def i7():
    return hwprune.device("core-i7")


def test_im2col_gemm_conv_by_hand(i7):
    # LeNet-5 conv1: M 20, K 25, N 576. 6 x 16 tiles: 4 x 36 = 144 (16 x 6 would be 192).
    est = cpu_latency(kernel_work(KernelShape(rows=20, cols=25, n=576, kernel=(5, 5)), "dense", 1.0), i7)
    kernel = 144 * 6 * 16 * 25 / (16 * 0.9)
    tile = 144 * 1 * 20
    pack = (25 * 576 + 20 * 25 * 1) * 0.5
    im2col = 25 * 576 * 1
    assert est.parts["kernel"] == pytest.approx(kernel)
    assert est.parts["tile"] == pytest.approx(tile) and est.parts["pack"] == pytest.approx(pack)
    assert est.parts["issue"] == pytest.approx(kernel + tile + pack)
    # footprint 4 (500 + 14 400 + 11 520) B = 105 680 B: in L2 (256 KB), 29 B/cycle
    moved = 4 * (500 + 14_400 + 2 * 11_520)
    assert est.parts["l2_bandwidth"] == pytest.approx(moved / 29)
    assert est.parts["l3_bandwidth"] == 0 and est.parts["dram_bandwidth"] == 0
    assert est.cycles == pytest.approx(kernel + tile + pack + im2col)


def test_gemm_edge_tiles_take_the_orientation_that_pads_less(i7):
    core, _ = gemm(i7, 16, 100, 6)          # one 16 x 6 tile instead of 3 x 1 tiles of 6 x 16
    assert core["kernel"] == pytest.approx(1 * 96 * 100 / 14.4)
    assert core["tile"] == pytest.approx(20)


def test_csr_spmm_conv_by_hand(i7):
    shape = KernelShape(rows=50, cols=500, n=64, kernel=(5, 5))
    work = kernel_work(shape, "csr", 0.1)
    est = cpu_latency(work, i7)
    stored = round(0.1 * 50 * 500)
    assert est.parts["issue"] == pytest.approx((stored + 50) * 64 * 0.125 + stored * 4)
    assert est.parts["im2col"] == pytest.approx(500 * 64)
    # X (128 000 B) + a row of Y sits in L2: every stored weight re-reads its 256 B row;
    # the once-through arrays (values, indices, pointers, X, Y: 156 004 B) also in L2
    once = 4 * stored + 4 * (stored + 51) + 4 * 500 * 64 + 4 * 50 * 64
    assert est.parts["l2_bandwidth"] == pytest.approx((4 * stored * 64 + once) / 29)
    dense = cpu_latency(kernel_work(shape, "dense", 1.0), i7)
    assert est.cycles < dense.cycles
    # compact on a convolution is a GEMM on the kept rows
    node = cpu_latency(kernel_work(shape, "filter", 0.5), i7)
    assert node.parts["kernel"] == pytest.approx(gemm(i7, 25, 500, 64)[0]["kernel"])


def test_blas_gemv_and_group_csr_by_hand(i7):
    shape = KernelShape(rows=10, cols=100, n=1)        # 4 440 B: L1 holds it, no memory term
    dense = cpu_latency(kernel_work(shape, "dense", 1.0), i7)
    assert dense.parts["issue"] == pytest.approx(1000 * 0.078125 + 10 * 4)
    assert dense.cycles == pytest.approx(dense.parts["issue"])
    big = KernelShape(rows=4096, cols=4096, n=1)        # 64 MiB: DRAM at one core's rate
    est = cpu_latency(kernel_work(big, "dense", 1.0), i7)
    assert est.bound == "dram_bandwidth"
    assert est.cycles == pytest.approx(4 * (4096 * 4096 + 2 * 4096) / 4.76)
    grp = kernel_work(KernelShape(rows=64, cols=256, n=1), "simd", 0.25, 8)
    est = cpu_latency(grp, i7)
    assert est.parts["issue"] == pytest.approx(grp.stored * 0.25 + 64 * 20)


def test_memory_terms_pick_the_level_that_holds_the_footprint(i7):
    assert set(memory_terms(i7, 1e3, 1e3).values()) == {0.0}             # L1
    assert memory_terms(i7, 1e6, 1e6)["L3"] == pytest.approx(1e6 / 18)
    assert memory_terms(i7, 1e9, 1e9)["DRAM"] == pytest.approx(1e9 / 4.76)


def test_gather_stall_is_a_monotone_envelope(i7):
    shape = KernelShape(rows=300, cols=784, n=1)
    raw = [cpu._simulated_stall(shape, "csr", g, 1, i7) for g in cpu.STALL_GRID]
    stalls = [gather_stall(kernel_work(shape, "csr", d), i7) for d in np.linspace(1, 0.005, 60)]
    assert all(a >= b for a, b in zip(stalls, stalls[1:]))
    for i, g in enumerate(cpu.STALL_GRID):
        assert gather_stall(kernel_work(shape, "csr", g), i7) == pytest.approx(min(raw[: i + 1]))


@pytest.mark.parametrize("scheme", ["dense", "fine", "simd", "node"])
def test_fc_at_batch_is_at_most_b_matrix_vector_calls(i7, scheme):
    one = cpu_latency(kernel_work(KernelShape(rows=500, cols=800, n=1), scheme, 0.2, 8), i7)
    for b in (2, 8, 64):
        est = cpu_latency(kernel_work(KernelShape(rows=500, cols=800, n=b, batch=b), scheme, 0.2, 8), i7)
        assert one.cycles < est.cycles <= b * one.cycles * (1 + 1e-12)
    # a wide batch reuses the weights: the dense GEMM beats 64 GEMVs
    wide = cpu_latency(kernel_work(KernelShape(rows=500, cols=800, n=64, batch=64), "dense", 1.0), i7)
    assert wide.cycles < 0.5 * 64 * cpu_latency(kernel_work(KernelShape(500, 800, 1), "dense", 1.0),
                                                i7).cycles


def test_scalpel_cpu_split_at_equal_density(i7):
    """On fc layers (matrix-vector) SIMD-group CSR beats CSR; on convolutions CSR loses
    the dense GEMM's reuse, so its break-even density is far lower than on fc."""
    net = hwprune.network("lenet-5")
    table = hwprune.latency.breakeven(net, i7, ("fine", "simd"))
    conv = table[(table["kind"] == "conv") & (table["scheme"] == "fine")]["breakeven_density"]
    fc = table[table["layer"] == "ip1"].set_index("scheme")["breakeven_density"]
    assert fc["simd"] > 2 * fc["fine"]
    assert conv.astype(float).max() < 0.9


def test_stream_curve_never_rises_with_footprint(monkeypatch):
    rates = iter([40.0, 44.0, 30.0, 31.0, 10.0])
    monkeypatch.setattr(host, "read_bandwidth", lambda nbytes: next(rates))
    curve = host.stream_curve(1.0, 16 << 14, step=2.0, smallest=16 << 10, passes=1)
    assert [b for _, b in curve] == [40.0, 40.0, 30.0, 30.0, 10.0]


def test_gemm_fit_recovers_the_model_it_was_given(monkeypatch):
    """Times made by the GEMM model (efficiency 0.8, 30 cycles per tile, 0.4 per packed
    element) are fitted back."""
    lanes, clock = 8, 1e9
    seconds = []
    for m, k, n in host.QUICK_GEMM_SHAPES:
        tiles = min(math.ceil(m / 6) * math.ceil(n / 16), math.ceil(m / 16) * math.ceil(n / 6))
        reps = max(1, int(2e7 // (m * k * n)))        # gemm_costs times reps calls at once
        seconds.append((tiles * 96 * k / (16 * 0.8) + 30 * tiles * math.ceil(k / 256)
                        + 0.4 * (k * n + m * k)) / clock * reps)
    times = iter(seconds)
    monkeypatch.setattr(host, "best_seconds", lambda fn, *a: next(times))
    fit = host.gemm_costs(clock, lanes, quick=True)
    assert fit["gemm_efficiency"] == pytest.approx(0.8, rel=1e-6)
    assert fit["gemm_tile_cycles"] == pytest.approx(30, rel=1e-6)
    assert fit["pack_element_cycles"] == pytest.approx(0.4, rel=1e-6)
    assert (fit["gemm_mr"], fit["gemm_nr"]) == (6, 16)


def test_timed_dense_and_compact_run_the_blas_on_one_thread():
    from threadpoolctl import threadpool_info
    with matvec_fit.one_thread():
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
        for scheme in ("dense", "compact"):
            matvec_fit.kernel_call(scheme, 12, 40, 0.5, np.random.default_rng(3))()


# ------------------------------------------------------------ the BLAS GEMV bandwidth curve

CURVES = """
[stream_bandwidth]
footprint_bytes = [1000, 100000, 10000000]
bytes_per_cycle = [40, 10, 4]

[stream_bandwidth.sources]
footprint_bytes = "test"
bytes_per_cycle = "test"

[gemv_bandwidth]
footprint_bytes = [1000, 100000, 10000000]
bytes_per_cycle = [20, 5, 2]

[gemv_bandwidth.sources]
footprint_bytes = "test"
bytes_per_cycle = "test: a GEMV at half the stream's rate"
"""


def _profile(tmp_path, curves=CURVES, dense_overlap=1.0):
    text = (hwprune.hardware.builtin_profile_dir() / "core-i7.toml").read_text()
    text = text.replace('id = "core-i7"', 'id = "gemv-test"').replace(
        "[latency]\n", f"[latency]\ndense_overlap = {dense_overlap}\n", 1) + curves
    path = tmp_path / "gemv.toml"
    path.write_text(text)
    return hwprune.device(str(path))


def test_gemv_curve_loads_and_interpolates(tmp_path):
    dev = _profile(tmp_path)
    assert dev.gemv_bandwidth == ((1000.0, 20.0), (1e5, 5.0), (1e7, 2.0))
    assert "half the stream" in dev.sources["gemv_bandwidth.bytes_per_cycle"]
    assert dev.gemv_bytes_per_cycle(10) == 20 and dev.gemv_bytes_per_cycle(1e9) == 2
    assert dev.gemv_bytes_per_cycle(10_000) == pytest.approx(12.5)        # halfway in log
    assert hwprune.device("core-i7").gemv_bandwidth == ()
    with pytest.raises(InputError, match="no gemv_bandwidth curve"):
        hwprune.device("core-i7").gemv_bytes_per_cycle(1000)


@pytest.mark.parametrize("table, match", [
    ("footprint_bytes = [1000, 1000]\nbytes_per_cycle = [2, 1]", "must increase"),
    ("footprint_bytes = [1000, 2000]\nbytes_per_cycle = [2]", "at least 2 numbers"),
    ("footprint_bytes = [1000, 2000, 3000]\nbytes_per_cycle = [2, 1]", "one value per footprint"),
    ("footprint_bytes = [1000, 2000]\nbytes_per_cycle = [2, 0]", "numbers > 0"),
    ("footprint_bytes = [1000, 2000]\nbytes_per_cycle = [2, 1]\nspeed = 3", "speed"),
])
def test_gemv_curve_is_checked_like_the_stream_curve(tmp_path, table, match):
    with pytest.raises(ProfileError, match=match):
        _profile(tmp_path, f"\n[gemv_bandwidth]\n{table}\n")


def test_gemv_curve_only_on_a_cpu(tmp_path):
    text = (hwprune.hardware.builtin_profile_dir() / "titan-x.toml").read_text()
    path = tmp_path / "gpu.toml"
    path.write_text(text + "\n[gemv_bandwidth]\nfootprint_bytes = [1, 2]\nbytes_per_cycle = [1, 1]\n")
    with pytest.raises(ProfileError, match="only a cpu profile takes a gemv_bandwidth curve"):
        hwprune.device(str(path))


def test_dense_and_compact_gemv_memory_on_the_gemv_curve_by_hand(tmp_path):
    dev = _profile(tmp_path)
    shape = KernelShape(rows=100, cols=200, n=1)
    est = cpu_latency(kernel_work(shape, "dense", 1.0), dev)
    # W 80 000 B + x 800 + y 400 = 81 200 B, between the GEMV curve's 1 000 B (20 B/cycle)
    # and 100 000 B (5 B/cycle), linear in log(footprint): 5.45 B/cycle, 14 900 cycles
    moved = 4 * (20_000 + 200 + 100)
    rate = 20 + (5 - 20) * math.log(moved / 1000) / math.log(100)
    assert est.parts["gemv_bandwidth"] == pytest.approx(moved / rate)
    assert "stream_bandwidth" not in est.parts and est.bound == "gemv_bandwidth"
    core = 20_000 * 0.078125 + 100 * 4            # core-i7: dense_mac_cycles, dense_row_cycles
    assert est.cycles == pytest.approx(max(core, moved / rate))    # dense_overlap 1
    # compact at 0.5 keeps 50 of the rows, all 200 columns: kept W 40 000 B, 200 column
    # indices 800, x 800, gathered x written and read 2 x 800, y 400, 50 row indices 200:
    # 43 800 B on the curve
    node = cpu_latency(kernel_work(shape, "compact", 0.5), dev)
    moved = 4 * (50 * 200 + 200 + 200 + 2 * 200 + 100 + 50)
    rate = 20 + (5 - 20) * math.log(moved / 1000) / math.log(100)
    assert node.parts["gemv_bandwidth"] == pytest.approx(moved / rate)
    # the sparse kernels (hwprune's numba loops) stay on the stream curve
    csr = cpu_latency(kernel_work(shape, "csr", 0.5), dev)
    assert "gemv_bandwidth" not in csr.parts and csr.parts["stream_bandwidth"] > 0


def test_dense_gemv_keeps_its_old_price_without_a_gemv_curve(tmp_path):
    stream_only = CURVES[:CURVES.index("[gemv_bandwidth]")]
    dev = _profile(tmp_path, stream_only)
    est = cpu_latency(kernel_work(KernelShape(rows=100, cols=200, n=1), "dense", 1.0), dev)
    moved = 4 * (20_000 + 200 + 100)
    rate = 40 + (10 - 40) * math.log(moved / 1000) / math.log(100)
    assert est.parts["stream_bandwidth"] == pytest.approx(moved / rate)
    assert "gemv_bandwidth" not in est.parts


def test_compact_on_the_gemv_curve_never_slows_as_density_falls(tmp_path):
    dev = _profile(tmp_path, dense_overlap=0.5)
    shape = KernelShape(rows=700, cols=900, n=1)
    cycles = [cpu_latency(kernel_work(shape, "compact", d), dev).cycles
              for d in np.linspace(1.0, 0.01, 40)]
    assert all(a >= b for a, b in zip(cycles, cycles[1:]))


def test_gemv_curve_shapes_and_monotone_envelope(monkeypatch):
    sizes = host.curve_footprints(1 << 20, 2.0, 16 << 10)
    assert sizes == [16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20]
    for f in sizes:
        rows, cols = host.gemv_shape(f)
        assert cols == 3 * rows and 4 * (rows * cols + rows + cols) <= f
        assert 4 * ((rows + 1) * 3 * (rows + 1) + 4 * (rows + 1)) > f   # the largest that fits
    # the small calls measure slow (numpy's dispatch): each point becomes the fastest
    # at its footprint or any larger one
    rates = iter([9.0, 44.0, 30.0, 31.0, 10.0])
    monkeypatch.setattr(host, "gemv_bandwidth", lambda nbytes: next(rates))
    curve = host.gemv_curve(1.0, 16 << 14, step=2.0, smallest=16 << 10, passes=1)
    assert [b for _, b in curve] == [44.0, 44.0, 31.0, 31.0, 10.0]


def test_gemv_bandwidth_runs_the_blas_on_one_thread():
    from threadpoolctl import threadpool_info
    with matvec_fit.one_thread():
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
        assert host.gemv_bandwidth(64 << 10, min_seconds=0.0) > 0
