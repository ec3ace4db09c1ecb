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

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks import check_density, check_name_or_path, regular_file
from ..errors import InputError
from ..hardware.profile import DeviceProfile
from ..schemes import Scheme, scheme
from ..sparse import formats as F
from ..workload.layer import Layer
from ..workload.ops import Conv2d, Linear, TokenLinear
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
    if isinstance(op, TokenLinear):
        raise InputError(f"layer {layer.name!r} is a linear layer over {op.tokens(layer.input_shapes)} "
                         "tokens; the cache simulator runs conv layers and fc layers on one "
                         "input vector")
    if not isinstance(op, (Conv2d, Linear)):
        raise InputError(f"layer {layer.name!r} is a {layer.kind} layer; the cache simulator "
                         "runs conv and fc layers")
    if isinstance(op, Conv2d) and op.pad_end is not None:
        raise InputError(f"layer {layer.name!r} is padded unevenly ({op.padding} at the start, "
                         f"{op.pad_end} at the end); the cache simulator's convolution trace "
                         "takes the same padding on both sides")
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


MAX_ACCESS_BYTES = 4096
"""Largest size of one access in a trace file: a page. A real load or store is at
most 64 bytes (AVX-512) and a wider copy is many accesses; the bound keeps one access
to at most 4096 / line bytes + 1 lines, so no single access can keep the simulator
busy for long (an access of 2^40 bytes ran for minutes and ignored Ctrl-C)."""

ADDRESS_LIMIT = 1 << 48
"""Trace addresses and ends (address + size) must be below this: the simulator's
address space (:data:`hwprune.cost.cachesim.MAX_ADDRESS`)."""

TRACE_LINES_PER_CALL = 1 << 22
"""About this many cache lines at most per simulator call on a trace file, so a
Ctrl-C (raised by Python between calls) stops a long trace within a fraction of a
second."""

_TRACE_ACCEPTED = ("a numpy .npy file holding an (n,) integer array of byte addresses "
                   "(4-byte reads) or an (n, 3) integer array of rows (address, size, is_write)")


def _trace_header(path: Path, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a ``.npy`` file declares, checked against the file's size
    before anything is allocated."""
    info = regular_file(path, what, _TRACE_ACCEPTED)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]}")
            offset = f.tell()
    except OSError as exc:
        raise InputError(f"{what}: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise InputError(f"{what}: holds several arrays (.npz); give one .npy array: "
                                 f"{_TRACE_ACCEPTED}") from None
        empty = " (the file is empty)" if info.st_size == 0 else ""
        raise InputError(f"{what}: not a numpy .npy array{empty} ({exc}); give "
                         f"{_TRACE_ACCEPTED}") from None
    if dtype.hasobject or dtype.kind not in "iu" or dtype.shape or dtype.names:
        raise InputError(f"{what}: dtype {dtype} is not accepted; give {_TRACE_ACCEPTED} "
                         "(int64 or another integer type)")
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 3)):
        raise InputError(f"{what}: shape {shape} is not accepted; give {_TRACE_ACCEPTED}")
    need = math.prod(shape) * dtype.itemsize
    if offset + need > info.st_size:
        raise InputError(f"{what}: the header says shape {shape} of {dtype} ({need} bytes), "
                         f"but the file holds {info.st_size - offset} bytes of data "
                         "(truncated, or not written by numpy.save)")
    return shape, dtype


def _bad(what: str, column: np.ndarray, mask: np.ndarray, name: str, rule: str) -> InputError:
    k = int(np.argmax(mask))
    return InputError(f"{what}: access {k} has {name} {int(column[k])}; {rule}")


def read_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Addresses, sizes and write flags from a ``.npy`` file: either a 1-D integer
    array of byte addresses (4-byte reads) or an ``(n, 3)`` integer array of
    ``(address, size, is_write)``.

    Checked before anything is simulated, each with an :class:`InputError` naming the
    file: the header's shape and dtype against the file's size (so a header claiming
    10^12 elements allocates nothing), addresses in [0, 2^48) and ends (address +
    size) at most 2^48 (large unsigned values are reported as too large, not as
    negative), sizes from 1 to :data:`MAX_ACCESS_BYTES`, is_write 0 or 1."""
    path = Path(check_name_or_path(path, "trace file", "the path of a .npy file"))
    what = f"trace file {path}"
    shape, dtype = _trace_header(path, what)
    try:
        data = np.load(path, allow_pickle=False)
    except MemoryError:
        raise InputError(f"{what}: shape {shape} of {dtype} does not fit in memory") from None
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{what}: not a numpy .npy array ({exc}); give "
                         f"{_TRACE_ACCEPTED}") from None
    if data.ndim == 1:
        columns = [data]
    else:
        columns = [data[:, 0], data[:, 1], data[:, 2]]
    if data.size and dtype.kind == "u":       # before the cast to int64 could wrap
        rules = {"address": "that is too large: addresses must be below 2^48",
                 "size": f"that is too large: one access may span at most {MAX_ACCESS_BYTES} bytes",
                 "is_write": "column 3 (is_write) must hold 0 or 1"}
        for (name, rule), col in zip(rules.items(), columns):
            too_large = col > np.uint64(np.iinfo(np.int64).max)
            if too_large.any():
                raise _bad(what, col, too_large, name, rule)
    columns = [c.astype(np.int64, copy=False) for c in columns]
    addr = columns[0]
    if data.ndim == 1:
        size, write = np.full(addr.shape, 4, np.int64), np.zeros(addr.shape, np.bool_)
    else:
        size, write = columns[1], columns[2]
    if addr.size:
        checks = (
            (addr, addr < 0, "address", "addresses must be >= 0"),
            (addr, addr >= ADDRESS_LIMIT, "address", "that is too large: addresses must be "
             "below 2^48 (the simulator's address space)"),
            (size, size < 1, "size", "sizes must be >= 1"),
            (size, size > MAX_ACCESS_BYTES, "size", f"that is too large: one access may span "
             f"at most {MAX_ACCESS_BYTES} bytes (split larger copies into accesses)"),
            (write, (write != 0) & (write != 1), "is_write", "column 3 (is_write) must hold 0 "
             "or 1"),
        )
        for column, mask, name, rule in checks:
            if mask.any():
                raise _bad(what, column, mask, name, rule)
        end = addr + size         # both checked above, so this cannot overflow
        if (end > ADDRESS_LIMIT - 1).any():
            raise _bad(what, end, end > ADDRESS_LIMIT - 1, "end (address + size)",
                       "ends must be at most 2^48 - 1")
    return (np.ascontiguousarray(addr), np.ascontiguousarray(size),
            np.ascontiguousarray(write.astype(np.bool_)))


def trace_chunk(size: np.ndarray, levels, chunk: int = T.CHUNK) -> int:
    """Accesses per simulator call for a trace whose largest access is ``size.max()``
    bytes: at most ``chunk``, and at most about :data:`TRACE_LINES_PER_CALL` lines."""
    if not size.size or not levels:
        return max(1, chunk)
    line = min(level.line_bytes for level in levels)
    lines = -(-int(size.max()) // line) + 1
    return max(1, min(chunk, TRACE_LINES_PER_CALL // lines))


def simulate_trace(path: str | Path, dev: DeviceProfile, refresh_on_store: bool = True,
                   chunk: int = T.CHUNK) -> pd.DataFrame:
    """Cache counts of a trace file on ``dev``'s cache levels.

    The trace is checked whole (:func:`read_trace`) before anything runs, then
    simulated in calls of at most ``chunk`` accesses (fewer when its accesses are wide,
    see :func:`trace_chunk`); a KeyboardInterrupt (Ctrl-C) arrives between calls and
    is never caught here."""
    addr, size, write = read_trace(path)
    levels = levels_of(dev)
    sim = CacheSimulator(levels, ("data",), refresh_on_store)
    step = trace_chunk(size, levels, chunk)
    for lo in range(0, addr.shape[0], step):
        sim.run(addr[lo:lo + step], size[lo:lo + step], write[lo:lo + step])
    return sim.table()
