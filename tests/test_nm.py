"""N:M structured sparsity (hwprune.sparse.nm): the mask hits its pattern exactly, the
layout round-trips, the numba kernels equal the numpy reference, the bytes are the
hardware's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprune.errors import InputError
from hwprune.sparse.kernels import reference_matmat, reference_matvec
from hwprune.sparse.nm import NMMatrix, check_nm, metadata_bits, nm_mask, nm_storage

PATTERNS = [(2, 4), (1, 4), (4, 8), (1, 2), (3, 5)]


@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 23), pattern=st.sampled_from(PATTERNS),
       seed=st.integers(0, 2**16))
def test_every_window_keeps_its_n_best(rows, cols, pattern, seed):
    n, m = pattern
    scores = np.random.default_rng(seed).permutation(rows * cols).reshape(rows, cols)
    mask = nm_mask(scores, n, m)
    for r in range(rows):
        for start in range(0, cols, m):
            window = scores[r, start:start + m]
            kept = mask[r, start:start + m]
            assert kept.sum() == min(n, window.size)
            if kept.sum() < window.size:
                assert window[kept].min() > window[~kept].max()


def test_ties_keep_the_lower_column():
    assert nm_mask(np.ones((1, 8)), 2, 4).tolist() == [[True, True, False, False] * 2]


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 7), cols=st.integers(1, 30), pattern=st.sampled_from(PATTERNS),
       batch=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_layout_round_trips_and_kernels_match_the_reference(rows, cols, pattern, batch, seed):
    n, m = pattern
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    mask = nm_mask(np.abs(w), n, m) & (rng.random((rows, cols)) < 0.8)   # fewer is fine
    matrix = NMMatrix.from_dense(w, mask, n, m)
    np.testing.assert_array_equal(matrix.to_dense(), np.where(mask, w, 0))
    x = rng.standard_normal(cols).astype(np.float32)
    X = rng.standard_normal((cols, batch)).astype(np.float32)
    np.testing.assert_allclose(matrix.matvec(x), reference_matvec(w, mask, x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(matrix.matmat(X), reference_matmat(w, mask, X), rtol=1e-4, atol=1e-4)


def test_two_four_stores_half_the_values_and_two_bits_each():
    """AlexNet fc7 (4096 x 4096) in fp16 at 2:4: 16 MiB of values halve to 8 MiB, plus
    2 bits per kept value (1 MiB)."""
    cost = nm_storage(4096, 4096, 2, 4, 2.0)
    assert cost.dense_bytes == 4096 * 4096 * 2
    assert cost.value_bytes == cost.dense_bytes / 2
    assert cost.index_bytes == 4096 * 4096 / 2 * 2 / 8
    assert metadata_bits(4) == 2 and metadata_bits(8) == 3 and metadata_bits(2) == 1
    # a row length that 4 does not divide: the last window still has 2 slots
    assert nm_storage(1, 10, 2, 4, 1.0).value_bytes == 3 * 2
    assert NMMatrix.from_dense(np.ones((3, 10)), nm_mask(np.ones((3, 10)), 2, 4), 2, 4).storage \
        == nm_storage(3, 10, 2, 4, 4.0)


@pytest.mark.parametrize("n, m, match", [(2, 2, "1 <= N < M"), (0, 4, "1 <= N < M"),
                                         (2.0, 4, "integers"), (True, 4, "integers"),
                                         (2, 512, "M <= 256")])
def test_bad_patterns_are_refused(n, m, match):
    with pytest.raises(InputError, match=match):
        check_nm(n, m)


def test_a_mask_that_breaks_the_pattern_is_refused_with_its_window():
    mask = np.zeros((2, 8), dtype=bool)
    mask[1, 4:7] = True
    with pytest.raises(InputError, match=r"3 weights in window 1 of row 1 \(columns 4\.\.7\).*at most 2"):
        NMMatrix.from_dense(np.ones((2, 8)), mask, 2, 4)


def test_scores_must_be_a_matrix():
    with pytest.raises(InputError, match="2-D"):
        nm_mask(np.ones(8), 2, 4)
    assert math.isclose(nm_mask(np.arange(12.0).reshape(1, 12), 1, 4).sum(), 3)
