"""What every stored weight matrix on the host shares: its input checks and the byte
sizes of its arrays (float32 values, int32 indices and pointers).

:mod:`hwprune.sparse.formats`, :mod:`hwprune.sparse.nm` and
:mod:`hwprune.sparse.block` build their layouts on these, so a weight matrix, a mask
or an input vector is checked, and a layout's bytes are counted, in one place.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .storage import POINTER_BYTES, StorageCost

VALUE_BYTES = 4
"""Bytes of one stored value (float32)."""

INDEX_BYTES = 4
"""Bytes of one stored index (int32)."""


def check_pair(weights: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D weight matrix as contiguous float32 and its boolean mask of the same shape."""
    weights = np.asarray(weights)
    mask = np.asarray(mask)
    if weights.ndim != 2:
        raise InputError(f"a weight matrix must be 2-D (rows x cols), got shape {weights.shape}")
    if mask.shape != weights.shape:
        raise InputError(f"mask shape {mask.shape} does not match weights shape {weights.shape}")
    if mask.dtype != np.bool_:
        raise InputError(f"mask must be boolean, got dtype {mask.dtype}")
    return np.ascontiguousarray(weights, dtype=np.float32), mask


def as_vector(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` as a contiguous float32 vector of ``length``, or a clear error."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape != (length,):
        raise InputError(f"input vector must have shape ({length},), got {x.shape}")
    return x


def as_matrix(X: np.ndarray, length: int) -> np.ndarray:
    """``X`` as a contiguous float32 matrix of ``length`` rows, or a clear error."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] != length:
        raise InputError(f"input matrix must have shape ({length}, n), got {X.shape}")
    return X


def layout_cost(values: int, indices: int, pointers: int, shape: tuple[int, int]) -> StorageCost:
    """Bytes of a stored layout with ``values`` values, ``indices`` int32 indices and
    ``pointers`` int32 pointers, against the dense ``shape``."""
    return StorageCost(values * VALUE_BYTES, indices * INDEX_BYTES + pointers * POINTER_BYTES,
                       shape[0] * shape[1] * VALUE_BYTES)
