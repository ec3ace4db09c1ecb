"""Run the cache simulator on a network layer's kernel, or on a trace file.

A layer runs the kernel hwprune would use for it at batch 1: a matrix-vector product
for a fully connected layer, im2col and a matrix-matrix product for a convolution
(one group after another for grouped convolutions, each group's tensors laid out
after the previous group's). Its weights are random (seeded;
the access pattern does not depend on their values) and pruned at ``density`` with
the scheme's structure (:func:`hwprune.sparse.formats.random_matrix`), in the
format of the kernel the scheme runs with (:mod:`hwprune.schemes`):

* ``dense``: zeros stored and computed;
* ``fine``: single weights, CSR;
* ``simd``: aligned groups of the device's SIMD width (Scalpel), group CSR;
* ``vector`` / ``kernel``: groups of one kernel row / one whole kernel (Mao et al.),
  group CSR; on a fully connected layer these are single weights (``fine``);
* ``filter`` / ``node``: whole output rows, compacted.

The hierarchy is the device's cache levels as one core sees them (one instance each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..checks import check_density
from ..errors import InputError
from ..hardware.profile import DeviceProfile
from ..schemes import Scheme, scheme
from ..sparse import formats as F
from ..workload.layer import Layer
from ..workload.ops import Conv2d, Linear
from . import traces as T
from .cachesim import CacheSimulator, levels_of

def _matrix(s: Scheme, rows: int, cols: int, kernel: tuple[int, int], density: float,
            rng: np.random.Generator, simd: int) -> F.SparseMatrix:
    return F.random_matrix(s.kernel, rows, cols, density, rng, s.group_width(kernel, simd))


def simulate_layer(layer: Layer, dev: DeviceProfile, pruning: Scheme | str, density: float,
                   seed: int = 0, refresh_on_store: bool = True) -> pd.DataFrame:
    """Cache counts of ``layer``'s kernel on ``dev`` pruned by scheme ``pruning`` at
    ``density`` (see :meth:`CacheSimulator.table`)."""
    density = check_density(density)
    op = layer.op
    if not isinstance(op, (Conv2d, Linear)):
        raise InputError(f"layer {layer.name!r} is a {layer.kind} layer; the cache simulator "
                         "runs conv and fc layers")
    s = scheme(pruning).on(isinstance(op, Linear))
    sim = CacheSimulator(levels_of(dev), T.STRUCTURES, refresh_on_store)
    rng = np.random.default_rng(seed)
    simd = dev.compute.simd_lanes
    rows, cols = layer.weight_shape[0], int(np.prod(layer.weight_shape[1:]))
    if isinstance(op, Linear):
        runs = [T.matvec_trace(_matrix(s, rows, cols, (1, 1), density, rng, simd))]
    else:
        c, h, w = layer.input_shape
        g = op.groups
        out_elements = layer.output_shape[1] * layer.output_shape[2]
        runs, start = [], T.BASE
        for _ in range(g):       # each group's tensors after the previous group's
            matrix = _matrix(s, rows // g, cols, op.kernel, density, rng, simd)
            runs.append(T.conv_trace(matrix, (c // g, h, w), op.kernel, op.stride, op.padding,
                                     start=start))
            start += T.conv_layout_bytes(matrix, (c // g, h, w), out_elements)
    for run in runs:
        for chunk in run:
            sim.run(chunk.addr, chunk.size, chunk.is_write, chunk.struct)
    return sim.table()


def read_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Addresses, sizes and write flags from a ``.npy`` file: either a 1-D int64 array
    of byte addresses (4-byte reads) or an ``(n, 3)`` int64 array of
    ``(address, size, is_write)``."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"trace file {path}: no such file") from None
    except (ValueError, OSError) as exc:
        raise InputError(f"trace file {path}: not a numpy .npy array ({exc})") from None
    if not isinstance(data, np.ndarray):
        raise InputError(f"trace file {path}: holds several arrays (.npz); give one .npy array")
    if data.dtype.kind not in "iu":
        raise InputError(f"trace file {path}: dtype {data.dtype} is not accepted; use int64")
    data = data.astype(np.int64, copy=False)
    if data.ndim == 1:
        addr, size, write = data, np.full(data.shape, 4, np.int64), np.zeros(data.shape, np.bool_)
    elif data.ndim == 2 and data.shape[1] == 3:
        addr, size, write = data[:, 0], data[:, 1], data[:, 2]
        if not np.isin(write, (0, 1)).all():
            raise InputError(f"trace file {path}: column 3 (is_write) must hold 0 or 1")
        write = write.astype(np.bool_)
    else:
        raise InputError(f"trace file {path}: shape {data.shape} is not accepted; use (n,) "
                         "addresses or (n, 3) rows of (address, size, is_write)")
    if addr.size and (addr.min() < 0 or size.min() < 1):
        raise InputError(f"trace file {path}: addresses must be >= 0 and sizes >= 1")
    return np.ascontiguousarray(addr), np.ascontiguousarray(size), np.ascontiguousarray(write)


def simulate_trace(path: str | Path, dev: DeviceProfile, refresh_on_store: bool = True,
                   chunk: int = T.CHUNK) -> pd.DataFrame:
    """Cache counts of a trace file on ``dev``'s cache levels."""
    addr, size, write = read_trace(path)
    sim = CacheSimulator(levels_of(dev), ("data",), refresh_on_store)
    for lo in range(0, addr.shape[0], chunk):
        sim.run(addr[lo:lo + chunk], size[lo:lo + chunk], write[lo:lo + chunk])
    return sim.table()
