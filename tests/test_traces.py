"""Kernel traces: exact sequences on hand cases, in-bounds addresses, access counts, and
identical cache counts to pycachesim."""

import numpy as np
import pytest
from test_cachesim import assert_same_as_pycachesim

import hwprune
from hwprune.cost import traces as T
from hwprune.cost.cachesim import CacheLevel, CacheSimulator, levels_of
from hwprune.sparse import formats as F


def concat(chunks):
    chunks = list(chunks)
    return (np.concatenate([c.addr for c in chunks]), np.concatenate([c.is_write for c in chunks]),
            np.concatenate([c.struct for c in chunks]))


def test_csr_matvec_trace_is_the_kernels_access_sequence():
    weights = np.array([[1, 0, 2], [0, 0, 3]], dtype=np.float32)
    matrix = F.CSRMatrix.from_dense(weights, weights != 0)   # data [1 2 3], indices [0 2 2]
    addr, write, struct = concat(T.matvec_trace(matrix))
    bw, bi, bp, bx, by, _ = T.layout(12, 12, 12, 12, 8)
    expected = [
        (bp, 0, 1), (bp + 4, 0, 1),                                  # indptr[0], indptr[1]
        (bw, 0, 0), (bi, 0, 1), (bx, 0, 2),                          # 1 * x[0]
        (bw + 4, 0, 0), (bi + 4, 0, 1), (bx + 8, 0, 2),              # 2 * x[2]
        (by, 1, 3),                                                  # y[0]
        (bp + 4, 0, 1), (bp + 8, 0, 1),
        (bw + 8, 0, 0), (bi + 8, 0, 1), (bx + 8, 0, 2),              # 3 * x[2]
        (by + 4, 1, 3),
    ]
    assert list(zip(addr.tolist(), write.astype(int).tolist(), struct.tolist())) == expected


@pytest.mark.parametrize("fmt, group", [("dense", 1), ("csr", 1), ("group-csr", 8),
                                        ("group-csr", 3), ("compact", 1)])
def test_traces_count_and_stay_in_bounds(fmt, group):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((23, 37)).astype(np.float32)
    mask = rng.random(weights.shape) < 0.3
    matrix = F.make_matrix(fmt, weights, mask, group=group)
    addr, write, struct = concat(T.matvec_trace(matrix))
    assert (addr % 4 == 0).all() and (addr >= T.BASE).all()
    # Every output is stored exactly once (compact also zeroes y first).
    stores_y = (struct == T.OUT_ID) & write
    assert stores_y.sum() == (23 + (mask.any(axis=1).sum()) if fmt == "compact" else 23)
    # One weight load per stored value.
    assert ((struct == T.W_ID) & ~write).sum() == matrix.stored_values
    X_cols = 4
    addr, write, struct = concat(T.matmat_trace(matrix, X_cols))
    assert ((struct == T.W_ID) & ~write).sum() == matrix.stored_values
    # Each stored value updates a row of Y: load + store per column.
    assert ((struct == T.OUT_ID) & ~write).sum() == matrix.stored_values * X_cols


def test_conv_trace_covers_im2col_and_matmat():
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((4, 2 * 3 * 3)).astype(np.float32)
    matrix = F.make_matrix("csr", weights, rng.random(weights.shape) < 0.5)
    addr, write, struct = concat(T.conv_trace(matrix, (2, 6, 6), (3, 3), (1, 1), (1, 1)))
    n = 36                                      # 6 x 6 outputs
    # im2col: zero 18 x 36 columns, then copy every in-bounds input tap.
    taps = sum(1 for r in range(3) for s in range(3) for e in range(6) for f in range(6)
               if 0 <= e - 1 + r < 6 and 0 <= f - 1 + s < 6) * 2
    input_loads = ((struct == T.IN_ID) & ~write).sum()
    assert input_loads == taps + matrix.stored_values * n


@pytest.mark.parametrize("fmt", ["dense", "csr", "group-csr", "compact"])
def test_kernel_traces_match_pycachesim(fmt):
    rng = np.random.default_rng(2)
    weights = rng.standard_normal((40, 300)).astype(np.float32)
    mask = rng.random(weights.shape) < 0.2
    matrix = F.make_matrix(fmt, weights, mask, group=8)
    levels = [CacheLevel("L1", 8, 2, 64), CacheLevel("L2", 32, 4, 64)]
    addr, write, _ = concat(T.matvec_trace(matrix))
    assert_same_as_pycachesim(levels, addr, 4, write)


def test_fc6_trace_streams_through_the_i7_hierarchy():
    """AlexNet fc6 at 10%: about 11 M accesses, simulated chunk by chunk."""
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((4096, 9216)).astype(np.float32)
    matrix = F.CSRMatrix.from_dense(weights, rng.random(weights.shape) < 0.1)
    sim = CacheSimulator(levels_of(hwprune.device("core-i7")), T.STRUCTURES)
    chunks = 0
    for chunk in T.matvec_trace(matrix):
        assert len(chunk) <= T.CHUNK + 20000
        sim.run(chunk.addr, chunk.size, chunk.is_write, chunk.struct)
        chunks += 1
    assert chunks >= 2 and sim.accesses == 3 * matrix.data.size + 3 * 4096
    table = sim.table().set_index(["level", "structure"])
    # Weights and indices stream: about one L1 miss per 64-byte line.
    lines = matrix.data.nbytes / 64
    assert table.loc[("L1", "weights"), "misses"] == pytest.approx(lines, rel=0.01)


def test_conv_trace_keeps_input_weights_and_groups_apart():
    """Regression: the input image and the weights once shared addresses, and every
    group of a grouped convolution reused the first group's."""
    rng = np.random.default_rng(4)
    weights = rng.standard_normal((4, 2 * 9)).astype(np.float32)
    matrix = F.make_matrix("dense", weights, np.ones(weights.shape, bool))
    addr, _, struct = concat(T.conv_trace(matrix, (2, 6, 6), (3, 3), (1, 1), (1, 1)))
    w_lines = set((addr[struct == T.W_ID] // 64).tolist())
    other_lines = set((addr[struct != T.W_ID] // 64).tolist())
    assert not w_lines & other_lines
    span = T.conv_layout_bytes(matrix, (2, 6, 6), 36)
    addr2, _, _ = concat(T.conv_trace(matrix, (2, 6, 6), (3, 3), (1, 1), (1, 1),
                                      start=T.BASE + span))
    assert addr.max() < addr2.min()


def test_depthwise_layer_touches_every_group():
    from hwprune.cost.cache_runs import simulate_layer

    layer = hwprune.network("mobilenet-v1")["Conv2d_1_depthwise"]
    table = simulate_layer(layer, hwprune.device("core-i7"), "dense", 1.0)
    memory = table.set_index(["level", "structure"]).loc[("memory", "outputs")]
    # 32 channels x 112 x 112 float32 outputs = 1.6 MB = 25,088 lines, all written.
    assert memory["loads"] >= 25_088


def test_trace_file_is_simulated_in_short_calls_and_ctrl_c_stops_between_them(tmp_path,
                                                                              monkeypatch):
    import signal

    from hwprune.cost import cache_runs

    path = tmp_path / "t.npy"
    np.save(path, np.stack([np.arange(0, 64 * 100, 64), np.full(100, 4096), np.zeros(100)],
                           axis=1).astype(np.int64))
    dev = hwprune.device("core-i7")
    line = min(lvl.line_bytes for lvl in levels_of(dev))
    step = cache_runs.trace_chunk(np.array([4096]), levels_of(dev))
    assert step * (4096 // line + 1) <= cache_runs.TRACE_LINES_PER_CALL
    calls = []
    original = CacheSimulator.run

    def run_then_interrupt(self, *args, **kwargs):
        calls.append(len(args[0]))
        original(self, *args, **kwargs)
        signal.raise_signal(signal.SIGINT)     # as if Ctrl-C came during this call

    monkeypatch.setattr(CacheSimulator, "run", run_then_interrupt)
    # Python's own Ctrl-C handler, also where the suite was started with SIGINT ignored
    # (a background job of a non-interactive shell)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            cache_runs.simulate_trace(path, dev, chunk=10)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert calls == [10]                       # stopped before the second call


def test_wide_accesses_run_in_fewer_per_call(tmp_path):
    from hwprune.cost import cache_runs

    levels = levels_of(hwprune.device("core-i7"))
    narrow = cache_runs.trace_chunk(np.array([4]), levels)
    assert 1 << 20 <= narrow <= T.CHUNK
    assert cache_runs.trace_chunk(np.array([4096]), levels) < narrow // 10
    assert cache_runs.trace_chunk(np.array([], np.int64), levels) == T.CHUNK


def test_an_unevenly_padded_convolution_is_refused_by_the_cache_simulator():
    from hwprune.cost.cache_runs import simulate_layer
    from hwprune.errors import InputError
    from hwprune.workload.layer import Layer
    from hwprune.workload.ops import Conv2d

    op = Conv2d(4, (3, 3), padding=(0, 0), pad_end=(1, 1))
    layer = Layer("c", op, ("input",), ((3, 8, 8),), op.output_shape([(3, 8, 8)]))
    with pytest.raises(InputError, match="padded unevenly"):
        simulate_layer(layer, hwprune.device("core-i7"), "fine", 0.5)
