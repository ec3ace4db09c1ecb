"""Device profiles: what a device can compute and what each memory access costs.

Values only; :mod:`hwprune.hardware.loader` builds them from TOML files and checks
them. Units are in the field names: ``_bytes``, ``_cycles`` (device clock cycles),
``_pj`` (picojoules per access of ``word_bytes``, or MAC-equivalents on a profile
whose :attr:`DeviceProfile.energy_unit` says so), ``_hz``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from ..checks import WEIGHT_FORMATS as FORMATS
from ..errors import InputError, UnknownNameError

DEVICE_CLASSES = ("mcu", "cpu", "gpu", "accelerator")
"""Accepted values of ``class`` in a profile: the latency model differs per class."""

MEMORY_KINDS = ("register_file", "scratchpad", "cache", "noc", "sram", "flash", "dram")
"""Accepted values of a memory level's ``kind``.

``cache`` is hardware-managed (has associativity and lines); ``register_file`` and
``scratchpad`` are software-managed storage; ``noc`` is an on-chip network that moves
data between storage elements (it holds none, so it has no size); ``sram``,
``flash`` and ``dram`` are backing memories.
"""

BACKING_KINDS = ("dram", "flash", "sram")

OPERANDS = ("weights", "inputs", "outputs")
"""The three operands of a convolution or fully connected layer, in this order."""

ZERO_HANDLING = ("none", "gate", "skip")
"""What a device does with a MAC that has a zero operand: ``none`` computes it,
``gate`` spends the cycle but not the energy (no operand read, no switching), ``skip``
spends neither."""

WEIGHT_FORMATS = FORMATS
"""How pruned weights are stored: see :mod:`hwprune.sparse.storage` (``N:M`` and
``block-RxC`` stand for their parametric names, :func:`~hwprune.checks.parse_format`)."""

ACTIVATION_FORMATS = ("dense", "rle")
"""How activations are stored in the outermost memory."""

DATAFLOWS = ("row-stationary", "weight-stationary", "output-stationary", "cache-tiling")
"""Dataflow presets of the energy model (:mod:`hwprune.cost.dataflow`)."""


ENERGY_TABLE_COLUMNS = (
    "layer", "kind", "category", "runs_as", "macs", "effective_macs", "ops", "weight_density",
    "act_density",
    "energy_pj", "energy_norm", "weights_pj", "index_pj", "inputs_pj", "outputs_pj",
    "compute_pj", "energy_unit", "fits_memory", "dataflow", "weight_format", "mapping",
)
"""The fixed columns of the energy table (:func:`hwprune.energy`); every memory level
adds :data:`LEVEL_COLUMN_SUFFIXES` to its lower-cased name beside them. Kept here, not
imported from :mod:`hwprune.cost.energy` (a higher rank); ``tests/test_profiles.py``
checks that the two agree."""

LEVEL_COLUMN_SUFFIXES = ("_accesses", "_pj")
"""What the energy table appends to a memory level's lower-cased name."""

RESERVED_LEVEL_NAMES = tuple(sorted({
    column[: -len(suffix)] for column in ENERGY_TABLE_COLUMNS for suffix in LEVEL_COLUMN_SUFFIXES
    if column.endswith(suffix) and len(column) > len(suffix)
}))
"""Memory-level names (compared case-insensitively) whose result columns would
overwrite a fixed column of the energy table (``energy`` -> ``energy_pj``)."""

MAX_LEVEL_NAME_CHARS = 32
"""Longest memory-level name: it becomes a column name (``l1_accesses``)."""


LOOP_DIMS = ("N", "M", "C", "E", "F", "R", "S")
"""The energy model's loop dimensions (batch, output channels, input channels, output
rows and columns, filter rows and columns), in the order every array indexed by
dimension uses; :data:`hwprune.cost.loopnest.DIMS` is this tuple. Kept here because
profiles name them in their ``[mapping]`` constraints."""

FILL_CONVENTIONS = ("charged", "free")
"""Accepted values of a profile's ``fills``: ``charged`` (the default, Timeloop's and
ZigZag's convention) writes every tile loaded into a level at that level's write
energy; ``free`` charges only the read at the level it comes from (Chen et al., ISCA
2016, whose normalized costs price each movement once)."""

ENERGY_UNITS = ("pJ", "MAC-equivalents")
"""Accepted values of a profile's ``energy_unit``: ``pJ`` (the default) for absolute
energies, ``MAC-equivalents`` for energies normalized to one MAC of the device (every
``_pj`` value is then a multiple of the MAC's energy, and ``mac_energy_pj`` is 1)."""


_KERNEL_KINDS = (("dense", "dense"), ("csr", "CSR"), ("group", "group-CSR"),
                 ("compact", "compact (node-pruned)"))

FRACTION_LATENCY_KEYS = frozenset(f"{kind}_overlap" for kind, _ in _KERNEL_KINDS)
"""``[latency]`` keys that hold a fraction in [0, 1]."""

ZERO_LATENCY_KEYS = frozenset(f"{kind}_call_cycles" for kind, _ in _KERNEL_KINDS)
"""``[latency]`` keys that may be 0 (every key not named here or above is > 0)."""

LATENCY_KEYS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "mcu": MappingProxyType({
        "load_cycles": "cycles of one load instruction from zero-wait-state memory (the first of a run)",
        "pipelined_load_cycles": "cycles of a load or store directly after a load it does not take "
                                 "its address from (back-to-back loads pipeline)",
        "mac_cycles": "cycles of one multiply-accumulate instruction (MLA, or SMLAD for two 16-bit MACs)",
        "alu_cycles": "cycles of one data-processing instruction (ADD, SUBS, SSAT)",
        "branch_cycles": "cycles of a taken loop branch, pipeline refill included",
        "loop_unroll": "loop bodies per loop test and taken branch (unrolling)",
        "row_cycles": "cycles of per-output work: bias, shift, saturate, store, outer-loop share",
        "im2col_position_cycles": "cycles of im2col per output column and kernel position besides "
                                  "the copy (bounds checks, address, copy call)",
        "flash_cache_lines": "lines of the flash data cache (ART accelerator) that keep a small "
                             "weight stream between passes",
        "vector_bytes": "bytes one vector instruction loads or multiplies (Helium: 16); given, the "
                        "vector (MVE) kernels run, with loads and MACs on overlapping pipes",
    }),
    "cpu": MappingProxyType({
        "dense_mac_cycles": "cycles per MAC of the dense matrix-vector kernel (a BLAS GEMV), data in L1",
        "csr_nnz_cycles": "cycles per stored nonzero of the CSR matrix-vector kernel, data in L1",
        "group_value_cycles": "cycles per stored value of the group-CSR matrix-vector kernel, data in L1",
        "row_cycles": "cycles of per-row work of the matrix-vector kernels",
        **{f"{kind}_row_cycles": f"cycles of per-row work of the {what} matrix-vector kernel "
                                 "(default: row_cycles)" for kind, what in _KERNEL_KINDS},
        **{f"{kind}_call_cycles": f"cycles of one call of the {what} matrix-vector kernel, "
                                  "whatever its size (dispatch, set-up; default 0)"
           for kind, what in _KERNEL_KINDS},
        **{f"{kind}_overlap": f"fraction in [0, 1] of the shorter of core and memory time that "
                              f"the {what} matrix-vector kernel hides under the longer (default 1)"
           for kind, what in _KERNEL_KINDS},
        "axpy_element_cycles": "cycles per element of the matrix-matrix kernels' inner y += w * x loop",
        "axpy_cycles": "cycles of one inner-loop start of the matrix-matrix kernels (per stored weight)",
        "im2col_element_cycles": "cycles per element im2col writes",
        "memory_parallelism": "cache misses of gathered loads in flight at once (fill buffers)",
        "gemm_efficiency": "fraction of peak MAC throughput a BLAS GEMM micro-kernel sustains",
        "gemm_mr": "rows of the GEMM micro-kernel's register tile of C",
        "gemm_nr": "columns of the GEMM micro-kernel's register tile of C",
        "gemm_kc": "depth of the GEMM's packed panels (the k block)",
        "gemm_nc": "columns of the GEMM's packed B panel (the n block)",
        "gemm_tile_cycles": "cycles of one GEMM micro-kernel call beyond its FMAs (C tile load, "
                            "add, store; set-up)",
        "pack_element_cycles": "cycles per element the GEMM packs (A blocks, B panels)",
        "dram_core_bytes_per_cycle": "bytes per cycle one core streams from DRAM",
    }),
    "gpu": MappingProxyType({
        "warp_size": "threads per warp",
        "max_warps_per_unit": "resident warps per streaming multiprocessor",
        "launch_cycles": "kernel launch overhead, cycles",
        "transaction_bytes": "bytes of one memory transaction (sector)",
        "gemm_efficiency": "fraction of peak MAC throughput a cuBLAS SGEMM tile (fc at batch > 1, "
                           "1x1 kernels) reaches on a full SM",
        "conv_efficiency": "fraction of peak MAC throughput a cuDNN implicit-GEMM convolution tile "
                           "reaches on a full SM",
        "dram_efficiency": "fraction of the DRAM peak bandwidth a streaming kernel reaches",
        "gemm_tile": "long side of a GEMM thread-block tile (elements)",
        "gemm_tile_min": "shortest short side of a cuBLAS GEMM tile (elements; halved from gemm_tile)",
        "conv_tile_min": "shortest short side of a cuDNN convolution tile (elements; halved from "
                         "gemm_tile)",
        "issue_per_unit": "warp instructions one SM issues per cycle (warp schedulers)",
    }),
    "accelerator": MappingProxyType({
        "noc_multicast_fanout": "PEs one transfer on the network-on-chip delivers the same value to "
                                "(multicast); without the key every PE's copy is one transfer",
        "noc_psum_links": "point-to-point links, each line_bytes of the network wide, that pass partial "
                          "sums between neighbouring PEs at once; without the key partial sums share "
                          "the network's bandwidth",
    }),
})
"""Accepted keys of a profile's optional ``[latency]`` table, per device class, with
what each holds (the latency models of :mod:`hwprune.latency` read them)."""


def _no_sources() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ComputeUnits:
    """The arithmetic resources of a device.

    Attributes:
        units: cores (cpu/mcu), streaming multiprocessors (gpu) or processing
            elements (accelerator).
        simd_lanes: elements one SIMD instruction processes (1 = scalar).
        simd_element_bits: width of one SIMD element in bits.
        macs_per_unit_per_cycle: peak multiply-accumulates one unit retires per cycle.
        mac_energy_pj: energy of one MAC at the device's data width, pJ.
        array_rows, array_cols: shape of a spatial PE array (accelerators), else None.
        psum_bits: width of a partial sum where the datapath accumulates wider than
            its data (16-bit partial sums beside 8-bit data); None: the data width.
    """

    units: int
    simd_lanes: int
    simd_element_bits: int
    macs_per_unit_per_cycle: float
    mac_energy_pj: float
    array_rows: int | None = None
    array_cols: int | None = None
    psum_bits: int | None = None

    @property
    def peak_macs_per_cycle(self) -> float:
        """Device-wide peak MACs per clock cycle."""
        return self.units * self.macs_per_unit_per_cycle


@dataclass(frozen=True)
class MemoryLevel:
    """One level of the memory hierarchy (innermost levels come first in a profile).

    Attributes:
        name: short label used in result columns (``L1``, ``DRAM``, ``RF``).
        kind: one of :data:`MEMORY_KINDS`.
        size_bytes: capacity of one instance in bytes; ``None`` for a ``noc``.
        instances: how many copies the device has (per core, per SM, per PE).
        line_bytes: transfer unit to the next outer level (cache line, flash line,
            DRAM burst).
        word_bytes: access width that ``read_energy_pj``/``write_energy_pj`` refer to.
        associativity: ways of a ``cache``; ``None`` for every other kind.
        latency_cycles: cycles from request to data for one access.
        read_energy_pj, write_energy_pj: pJ per access of ``word_bytes``
            (``write_energy_pj`` is ``None`` for read-only flash).
        bandwidth_bytes_per_cycle: peak bytes per device cycle of one instance.
        holds: which operands the level stores (a subset of :data:`OPERANDS`); an
            operand it does not hold passes it by (GPU accumulators skip shared
            memory, MCU weights are read from flash directly).
        partition_bytes: capacity split by operand group, per instance, e.g.
            ``(("weights",), 448), (("inputs",), 24)``; empty when the operands share
            ``size_bytes`` freely.
        operand_energy_pj: ``((operand, read, write), ...)``: an operand's own energies
            per access of ``word_bytes`` where its partition has its own (Eyeriss's
            filter, ifmap and psum scratchpads); empty: every operand costs
            ``read_energy_pj``/``write_energy_pj``. See :meth:`read_pj`.
        sliding_window: (innermost level only) it keeps the overlap of consecutive
            input windows, so a window that slides by the stride loads only the new
            columns (Eyeriss's ifmap scratchpad).
        sources: where each numeric value comes from, keyed by field name.
    """

    name: str
    kind: str
    size_bytes: int | None
    instances: int
    line_bytes: int
    word_bytes: int
    associativity: int | None
    latency_cycles: float
    read_energy_pj: float
    write_energy_pj: float | None
    bandwidth_bytes_per_cycle: float
    holds: tuple[str, ...] = OPERANDS
    partition_bytes: tuple[tuple[tuple[str, ...], int], ...] = ()
    operand_energy_pj: tuple[tuple[str, float, float], ...] = ()
    sliding_window: bool = False
    sources: Mapping[str, str] = field(default_factory=_no_sources, compare=False, repr=False)

    def read_pj(self, operand: str) -> float:
        """Energy of one read of ``word_bytes`` of ``operand`` (its own where given)."""
        return next((r for op, r, _ in self.operand_energy_pj if op == operand), self.read_energy_pj)

    def write_pj(self, operand: str) -> float:
        """Energy of one write of ``word_bytes`` of ``operand`` (0 for read-only flash)."""
        own = next((w for op, _, w in self.operand_energy_pj if op == operand), None)
        return own if own is not None else (self.write_energy_pj or 0.0)

    @property
    def is_cache(self) -> bool:
        return self.kind == "cache"

    @property
    def total_bytes(self) -> int | None:
        """Capacity summed over all instances, bytes (``None`` for a ``noc``)."""
        return None if self.size_bytes is None else self.size_bytes * self.instances

    @property
    def sets(self) -> int | None:
        """Number of sets of a cache (``size / (line * ways)``), else ``None``."""
        if not self.is_cache or self.size_bytes is None or self.associativity is None:
            return None
        return self.size_bytes // (self.line_bytes * self.associativity)


@dataclass(frozen=True)
class SparsitySupport:
    """What a device does with zeros, and how it stores sparse data.

    Attributes:
        zero_weights: one of :data:`ZERO_HANDLING`, for MACs with a zero weight that
            is stored (dense weight format).
        zero_activations: one of :data:`ZERO_HANDLING`, for MACs with a zero input
            activation.
        weight_format: default storage of pruned weights, one of :data:`WEIGHT_FORMATS`.
        activation_format: storage of activations in the outermost memory, one of
            :data:`ACTIVATION_FORMATS`.
        index_bits: bits of one stored index (column index, run length).
        structured: the N:M patterns (``"2:4"``) the compute units run natively;
            any other pattern runs as a generic sparse format
            (:func:`hwprune.latency.work.runs_as`).
        structured_speedup: math throughput on those patterns over dense (x): the
            units skip the pruned half of a 2:4 product.
        structured_metadata_bits: metadata bits the units read per kept value.
        channel_multiple: the unit count the compute units are built for (a GEMM
            dimension that is not a multiple runs padded to one, see the gpu model);
            ``node-roundK`` with ``K`` this multiple is what the policies try.
    """

    zero_weights: str = "none"
    zero_activations: str = "none"
    weight_format: str = "dense"
    activation_format: str = "dense"
    index_bits: int = 32
    structured: tuple[str, ...] = ()
    structured_speedup: float = 1.0
    structured_metadata_bits: int = 0
    channel_multiple: int = 1

    def runs_natively(self, pattern: str) -> bool:
        """True when the compute units run the N:M pattern named ``pattern`` natively."""
        return pattern in self.structured


def _interpolate(curve: tuple[tuple[float, float], ...], footprint_bytes: float) -> float:
    """``curve``'s bytes per cycle at ``footprint_bytes``: linear in log(footprint)
    between its points, held flat beyond its ends."""
    sizes = [math.log(max(1.0, f)) for f, _ in curve]
    rates = [b for _, b in curve]
    x = math.log(max(1.0, float(footprint_bytes)))
    if x <= sizes[0]:
        return rates[0]
    for (x0, b0), (x1, b1) in zip(zip(sizes, rates), zip(sizes[1:], rates[1:])):
        if x <= x1:
            return b0 + (b1 - b0) * (x - x0) / (x1 - x0)
    return rates[-1]


@dataclass(frozen=True)
class DeviceProfile:
    """A device: its class, clock, compute units and ordered memory levels.

    Attributes:
        id: short identifier used on the command line (``core-i7``).
        name: human-readable name with the exact part.
        device_class: one of :data:`DEVICE_CLASSES`.
        clock_hz: clock the cycle counts refer to, Hz.
        compute: the arithmetic resources.
        memory: memory levels, innermost (closest to the MACs) first.
        sparsity: zero handling and sparse storage defaults.
        dataflow: default dataflow preset of the energy model (:data:`DATAFLOWS`).
        description: one line for listings.
        origin: the file the profile was read from.
        sources: where each top-level and compute value comes from, keyed by the
            dotted key (``clock_hz``, ``compute.units``, ``latency.row_cycles``).
        latency: the class's latency-model parameters (:data:`LATENCY_KEYS`), in the
            units each key names; empty when the profile has no ``[latency]`` table.
        stream_bandwidth: a measured curve of sequential-read bandwidth against the
            bytes the stream keeps re-reading: ``((footprint_bytes, bytes_per_cycle),
            ...)`` with footprints increasing; empty when the profile has none (only
            ``hwprune calibrate`` writes one). See :meth:`stream_bytes_per_cycle`.
        gemv_bandwidth: a measured curve of what the host's BLAS GEMV (``W @ x``, one
            thread) moves per cycle (``W``, ``x`` and ``y`` bytes per cycle) against those
            bytes' footprint, same form as ``stream_bandwidth``; empty when the profile
            has none. See :meth:`gemv_bytes_per_cycle`.
        energy_unit: what every ``_pj`` energy of the profile (and every energy
            computed from it) is in, one of :data:`ENERGY_UNITS`: ``pJ``, or
            ``MAC-equivalents`` when the energies are normalized to one MAC of the
            device (see :attr:`energy_normalized`).
        fills: one of :data:`FILL_CONVENTIONS`: whether a tile loaded into a level
            is also charged as writes at that level.
        mapping_spatial: the ``[mapping] spatial`` constraint: per array axis (rows,
            columns; or the one axis of cores/SMs) the loop dimensions it may unroll,
            intersected with the dataflow's; empty: the dataflow's alone.
        mapping_levels: the ``[mapping.levels]`` constraint, ``((level, dims), ...)``:
            the dimensions a storage level may iterate over (see :meth:`level_loops`).
    """

    id: str
    name: str
    device_class: str
    clock_hz: float
    compute: ComputeUnits
    memory: tuple[MemoryLevel, ...]
    sparsity: SparsitySupport = SparsitySupport()
    dataflow: str = "cache-tiling"
    description: str = ""
    origin: str = ""
    sources: Mapping[str, str] = field(default_factory=_no_sources, compare=False, repr=False)
    latency: Mapping[str, float] = field(default_factory=_no_sources, compare=False)
    stream_bandwidth: tuple[tuple[float, float], ...] = ()
    gemv_bandwidth: tuple[tuple[float, float], ...] = ()
    energy_unit: str = "pJ"
    fills: str = "charged"
    mapping_spatial: tuple[tuple[str, ...], ...] = ()
    mapping_levels: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def level_loops(self, name: str) -> tuple[str, ...] | None:
        """The loop dimensions the ``[mapping.levels]`` constraint lets storage level
        ``name`` iterate over (its tile larger than the level below's), or None: any."""
        return next((dims for lvl, dims in self.mapping_levels if lvl == name), None)

    @property
    def energy_normalized(self) -> bool:
        """Whether the energies are relative to one MAC (``MAC-equivalents``), not pJ."""
        return self.energy_unit == "MAC-equivalents"

    def stream_bytes_per_cycle(self, footprint_bytes: float) -> float:
        """Bytes per cycle of a sequential read stream that re-reads ``footprint_bytes``
        bytes call after call, interpolated on :attr:`stream_bandwidth` (linear in
        log(footprint), held flat beyond the measured ends). Needs a curve."""
        if not self.stream_bandwidth:
            raise InputError(f"device {self.id!r} has no stream_bandwidth curve (hwprune "
                             "calibrate writes one)")
        return _interpolate(self.stream_bandwidth, footprint_bytes)

    def gemv_bytes_per_cycle(self, footprint_bytes: float) -> float:
        """Bytes per cycle the host's BLAS GEMV moves when its ``W``, ``x`` and ``y`` span
        ``footprint_bytes``, called again and again; interpolated on
        :attr:`gemv_bandwidth` like :meth:`stream_bytes_per_cycle`. Needs a curve."""
        if not self.gemv_bandwidth:
            raise InputError(f"device {self.id!r} has no gemv_bandwidth curve (hwprune "
                             "calibrate writes one)")
        return _interpolate(self.gemv_bandwidth, footprint_bytes)

    def level(self, name: str) -> MemoryLevel:
        """The memory level called ``name`` (case-sensitive)."""
        for lvl in self.memory:
            if lvl.name == name:
                return lvl
        raise UnknownNameError(
            f"device {self.id!r} has no memory level {name!r}; its levels are: "
            + ", ".join(lvl.name for lvl in self.memory)
        )

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(lvl.name for lvl in self.memory)

    @property
    def element_bytes(self) -> float:
        """Bytes of one operand element (the compute data width)."""
        return self.compute.simd_element_bits / 8

    @property
    def psum_bytes(self) -> float:
        """Bytes of one partial sum (``compute.psum_bits``, default the data width)."""
        return (self.compute.psum_bits or self.compute.simd_element_bits) / 8

    @property
    def peak_macs_per_second(self) -> float:
        """Device-wide peak MAC throughput, MAC/s."""
        return self.compute.peak_macs_per_cycle * self.clock_hz
