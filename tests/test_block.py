"""2-D block sparsity (hwprune.sparse.block): every block is all-zero or kept, the BSR
layout round-trips and equals scipy's, the numba kernels equal the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprune.errors import InputError
from hwprune.sparse.block import BlockMatrix, block_mask, block_storage, check_block, uses_column_kernel
from hwprune.sparse.kernels import reference_matmat, reference_matvec

SHAPES = [(1, 4), (2, 2), (4, 4), (3, 5), (8, 1), (8, 4), (2, 8), (16, 16)]
"""Blocks that run the column kernel (the first ones and 8x4) and the row-major one (3x5,
2x8, 16x16)."""


@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 20), cols=st.integers(1, 20), block=st.sampled_from(SHAPES),
       density=st.floats(0.05, 1.0), seed=st.integers(0, 2**16))
def test_every_block_is_all_zero_or_kept(rows, cols, block, density, seed):
    r, c = block
    scores = np.random.default_rng(seed).random((rows, cols))
    mask = block_mask(scores, r, c, density)
    blocks = [(i, j) for i in range(0, rows, r) for j in range(0, cols, c)]
    kept = [mask[i:i + r, j:j + c].all() for i, j in blocks]
    assert all(mask[i:i + r, j:j + c].all() or not mask[i:i + r, j:j + c].any() for i, j in blocks)
    assert sum(kept) == max(1, round(density * len(blocks)))
    sums = [scores[i:i + r, j:j + c].sum() for i, j in blocks]
    if 0 < sum(kept) < len(blocks):
        assert min(s for s, k in zip(sums, kept) if k) >= max(s for s, k in zip(sums, kept) if not k)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 21), cols=st.integers(1, 21), block=st.sampled_from(SHAPES),
       batch=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_layout_round_trips_and_kernels_match_the_reference(rows, cols, block, batch, seed):
    r, c = block
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    mask = block_mask(np.abs(w), r, c, 0.4) & (rng.random((rows, cols)) < 0.9)
    matrix = BlockMatrix.from_dense(w, mask, r, c)
    assert (matrix.columns is not None) == uses_column_kernel(r, c)
    np.testing.assert_array_equal(matrix.to_dense(), np.where(mask, w, 0))
    x = rng.standard_normal(cols).astype(np.float32)
    X = rng.standard_normal((cols, batch)).astype(np.float32)
    np.testing.assert_allclose(matrix.matvec(x), reference_matvec(w, mask, x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(matrix.matmat(X), reference_matmat(w, mask, X), rtol=1e-4, atol=1e-4)


def test_the_layout_is_scipys_bsr():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((32, 48)).astype(np.float32)
    mask = block_mask(np.abs(w), 8, 8, 0.3)
    ours = BlockMatrix.from_dense(w, mask, 8, 8)
    theirs = sp.bsr_matrix(np.where(mask, w, 0), blocksize=(8, 8))
    theirs.eliminate_zeros()
    np.testing.assert_array_equal(ours.indptr, theirs.indptr)
    np.testing.assert_array_equal(ours.indices, theirs.indices)
    np.testing.assert_array_equal(ours.data, theirs.data)


def test_storage_by_hand():
    """AlexNet fc7 in 16x16 blocks at 10%: 256 x 256 blocks, 6553.6 kept: their values,
    a 16-bit index each, 257 row pointers."""
    cost = block_storage(4096, 4096, 16, 16, 0.1, 2.0, 16)
    assert cost.value_bytes == pytest.approx(0.1 * 256 * 256 * 256 * 2)
    assert cost.index_bytes == pytest.approx(0.1 * 256 * 256 * 2 + 257 * 4)
    assert cost.dense_bytes == 4096 * 4096 * 2


@pytest.mark.parametrize("r, c", [(1, 1), (0, 4), (2.0, 2), (True, 4)])
def test_bad_block_shapes_are_refused(r, c):
    with pytest.raises(InputError, match="block shape"):
        check_block(r, c)
