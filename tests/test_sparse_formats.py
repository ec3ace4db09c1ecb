"""Sparse formats: exact round trips, storage bytes, and every kernel against numpy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprune.errors import InputError
from hwprune.sparse import formats as F
from hwprune.sparse import kernels as K
from hwprune.sparse.storage import storage_cost

FORMATS = ["dense", "csr", "group-csr", "compact"]
RTOL, ATOL = 1e-4, 1e-4   # float32 accumulation against a float64 reference


def random_case(seed, rows, cols, density, group=1):
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((rows, cols)).astype(np.float32)
    mask = rng.random((rows, cols)) < density
    return rng, weights, mask


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 70), density=st.floats(0.0, 1.0),
       group=st.integers(1, 9), fmt=st.sampled_from(FORMATS), seed=st.integers(0, 2**16),
       n=st.integers(1, 5))
def test_round_trip_and_kernels_match_numpy(rows, cols, density, group, fmt, seed, n):
    rng, weights, mask = random_case(seed, rows, cols, density)
    matrix = F.make_matrix(fmt, weights, mask, group=group)
    assert np.array_equal(matrix.to_dense(), np.where(mask, weights, 0))
    x = rng.standard_normal(cols).astype(np.float32)
    np.testing.assert_allclose(matrix.matvec(x), K.reference_matvec(weights, mask, x),
                               rtol=RTOL, atol=ATOL)
    X = rng.standard_normal((cols, n)).astype(np.float32)
    np.testing.assert_allclose(matrix.matmat(X), K.reference_matmat(weights, mask, X),
                               rtol=RTOL, atol=ATOL)


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 4), m=st.integers(1, 5), h=st.integers(3, 9), w=st.integers(3, 9),
       k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 1),
       density=st.floats(0.0, 1.0), fmt=st.sampled_from(FORMATS), seed=st.integers(0, 2**16))
def test_conv2d_matches_direct_numpy_convolution(c, m, h, w, k, stride, pad, density, fmt,
                                                 seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    weights = rng.standard_normal((m, c, k, k)).astype(np.float32)
    mask = rng.random(weights.shape) < density
    matrix = F.make_matrix(fmt, weights.reshape(m, -1), mask.reshape(m, -1), group=k * k)
    out = F.conv2d(matrix, x, (k, k), (stride, stride), (pad, pad))
    ref = K.reference_conv2d(x, np.where(mask, weights, 0), (stride, stride), (pad, pad))
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)


def test_group8_kernel_matches_generic_group_kernel():
    rng, weights, _ = random_case(1, 64, 200, 1.0)
    mask = np.repeat(rng.random((64, 25)) < 0.3, 8, axis=1)
    matrix = F.GroupCSRMatrix.from_dense(weights, mask, 8)
    x = np.concatenate([rng.standard_normal(200), np.zeros(0)]).astype(np.float32)
    y8 = matrix.matvec(x)
    y = np.empty(64, dtype=np.float32)
    K.group_matvec(matrix.data, matrix.group_col, matrix.indptr, x, y)
    np.testing.assert_allclose(y8, y, rtol=1e-5, atol=1e-5)


def test_storage_bytes_hand_computed():
    weights = np.arange(1, 17, dtype=np.float32).reshape(2, 8)
    mask = np.zeros((2, 8), dtype=bool)
    mask[0, [0, 1, 5]] = True
    mask[1, [7]] = True
    csr = F.CSRMatrix.from_dense(weights, mask)
    assert (csr.storage.value_bytes, csr.storage.index_bytes) == (4 * 4, 4 * 4 + 3 * 4)
    group = F.GroupCSRMatrix.from_dense(weights, mask, 4)
    # Row 0 keeps groups [0:4] and [4:8], row 1 keeps [4:8]: 3 groups of 4 values.
    assert group.stored_values == 12
    assert (group.storage.value_bytes, group.storage.index_bytes) == (48, 3 * 4 + 3 * 4)
    compact = F.CompactMatrix.from_dense(weights, mask)
    # Rows 0 and 1 kept, columns 0, 1, 5, 7 kept.
    assert compact.values.shape == (2, 4)
    assert compact.storage.index_bytes == (2 + 4) * 4
    assert F.DenseMatrix.from_dense(weights, mask).storage.total_bytes == 64


@pytest.mark.parametrize("fmt, group", [("csr", 1), ("simd-group", 8)])
def test_analytic_storage_matches_real_formats(fmt, group):
    """The energy model's expected storage (hwprune.sparse.storage) agrees with the real
    formats at the density they actually reach."""
    rng = np.random.default_rng(3)
    rows, cols = 300, 784
    weights = rng.standard_normal((rows, cols)).astype(np.float32)
    if fmt == "csr":
        mask = rng.random((rows, cols)) < 0.2
        real = F.CSRMatrix.from_dense(weights, mask)
        density = mask.mean()
    else:
        mask = np.repeat(rng.random((rows, cols // group)) < 0.2, group, axis=1)
        real = F.GroupCSRMatrix.from_dense(weights, mask, group)
        density = mask.mean()
    expected = storage_cost(fmt, rows, cols, density, 4, 32, group)
    assert real.storage.value_bytes == pytest.approx(expected.value_bytes, rel=1e-9)
    assert real.storage.index_bytes == pytest.approx(expected.index_bytes, rel=1e-9)


def test_granularity_groups():
    assert F.granularity_group("vector", (3, 5)) == 5
    assert F.granularity_group("kernel", (3, 5)) == 15
    with pytest.raises(InputError, match="'filter' compacted"):
        F.granularity_group("filter", (3, 3))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: F.make_matrix("coo", np.ones((2, 2)), np.ones((2, 2), bool)), "unknown format"),
        (lambda: F.CSRMatrix.from_dense(np.ones(4), np.ones(4, bool)), "must be 2-D"),
        (lambda: F.CSRMatrix.from_dense(np.ones((2, 2)), np.ones((2, 3), bool)), "does not match"),
        (lambda: F.CSRMatrix.from_dense(np.ones((2, 2)), np.ones((2, 2))), "must be boolean"),
        (lambda: F.GroupCSRMatrix.from_dense(np.ones((2, 2)), np.ones((2, 2), bool), 0),
         "group width"),
        (lambda: F.make_matrix("csr", np.ones((2, 3)), np.ones((2, 3), bool)).matvec(np.ones(2)),
         "shape (3,)"),
        (lambda: F.conv2d(F.make_matrix("dense", np.ones((2, 8)), np.ones((2, 8), bool)),
                          np.ones((3, 3, 3)), (2, 2)), "C*R*S"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*")):
        call()
