"""The registry of schemes: every way hwprune knows to prune a layer and run it.

A :class:`Scheme` is one frozen value that says, for a conv or fully connected layer:

* **mask granularity** (:attr:`Scheme.group`): what one group of weights is, kept or
  removed whole: a single weight, ``g`` consecutive weights of a weight row (``g`` =
  the device's SIMD width), a kernel row (``S`` weights), a whole 2-D kernel
  (``R x S``), or a whole output row (a filter or neuron);
* **kernel** (:attr:`Scheme.kernel`): the sparse format whose kernel executes the
  pruned layer (:mod:`hwprune.sparse.formats`; the latency models price it);
* **storage** (:attr:`Scheme.storage`): the weight storage format whose bytes the
  energy model and the byte counts charge (:mod:`hwprune.sparse.storage`);
* **group width** (:meth:`Scheme.group_width`): from the device's SIMD lanes or from
  the layer's kernel shape;
* whether it **removes whole units** (:attr:`Scheme.removes_units`): the layer is
  physically smaller, and so are the layers that consume its outputs.

``density`` always means the kept fraction of what the scheme removes: weights for
``fine``, groups for ``simd``/``vector``/``kernel``/``block``, output units for
``filter``/``node``. An N:M scheme keeps ``N / M`` of every row whatever density is
asked for (:attr:`Scheme.fixed_density`).

**Parametric schemes** are named by their parameters and registered the first time a
name is looked up (:func:`scheme`):

* ``N:M`` (``2:4``, ``1:4``, ``4:8``, any ``1 <= N < M <= 256``; ``nm`` is ``2:4``):
  the ``N`` largest of every ``M`` consecutive weights of a row (the reduction
  dimension), stored with ``ceil(log2 M)`` bits of metadata per kept value
  (:mod:`hwprune.sparse.nm`); what NVIDIA's sparse tensor cores run at 2:4;
* ``block-RxC`` (``block`` is ``block-4x4``): ``R x C`` blocks of the weight matrix
  (``R`` output rows by ``C`` consecutive columns), kept or removed whole, one index
  per block (:mod:`hwprune.sparse.block`, scipy's BSR layout);
* ``node-roundK``: node pruning whose kept units are rounded up to a multiple of ``K``
  (the SIMD or tensor-core width; Torch-Pruning's ``round_to``).

Every other module takes a :class:`Scheme`, never a name; names are looked up here
once, at the edge (:func:`scheme`). Adding a scheme is one :func:`register` call; its
mask (``hwprune.prune.granularity``), storage (``hwprune.sparse.storage``) and kernel
(``hwprune.sparse.formats``) are found through the fields above. A test registers a
toy scheme this way and runs it through ``evaluate``, ``recommend`` and a sweep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .checks import BLOCK_NAME, NM_NAME, check_block, check_nm, metadata_bits
from .errors import InputError, UnknownNameError


class Kernel(str, Enum):
    """The kernels (sparse formats) hwprune executes and prices; the values are the
    format names of :mod:`hwprune.sparse.formats`."""

    DENSE = "dense"
    CSR = "csr"
    GROUP_CSR = "group-csr"
    COMPACT = "compact"
    NM = "nm"
    BLOCK = "block"


class Group(str, Enum):
    """What one mask group of a weight row is (the width rule of
    :meth:`Scheme.group_width`)."""

    NONE = "none"              # nothing is removed
    WEIGHT = "weight"          # one weight
    SIMD = "simd"              # g = the device's SIMD lanes consecutive weights
    KERNEL_ROW = "kernel-row"  # S consecutive weights (one kernel row)
    KERNEL = "kernel"          # R x S weights (one 2-D kernel)
    ROW = "row"                # a whole weight row: one output unit
    FIXED = "fixed"            # Scheme.width consecutive weights, whatever the device
    NM = "nm"                  # N kept of every M consecutive weights of a row
    BLOCK = "block"            # an R x C block of the weight matrix (R rows, C columns)


@dataclass(frozen=True)
class Scheme:
    """One way to prune and run a layer (see the module docstring).

    Attributes:
        name: the name the CLI and the API accept.
        description: one line for help texts and docs.
        group: what one mask group is.
        kernel: the kernel that executes the pruned layer.
        storage: the storage format of its weights (``dense``, ``csr``,
            ``simd-group``: :data:`hwprune.checks.WEIGHT_FORMATS`).
        removes_units: whole output units go, so the layer and the inputs of the
            layers reading it shrink.
        masks_consumers: while training, the weights of the next layer that read a
            removed unit are masked as well (node pruning); ``filter`` leaves them,
            and they are removed when the network is deployed.
        aliases: further accepted names (the kernel names that earlier versions of
            ``hwprune latency --scheme`` took).
        source: where the scheme comes from.
        width: weights per group of a :attr:`Group.FIXED` scheme.
        nm: ``(N, M)`` of an N:M scheme (``(0, 0)`` otherwise).
        block: ``(R, C)`` of a block scheme (``(0, 0)`` otherwise).
        round_to: kept units rounded up to a multiple of this (unit-removing schemes;
            1: no rounding).
    """

    name: str
    description: str
    group: Group
    kernel: Kernel
    storage: str
    removes_units: bool = False
    masks_consumers: bool = False
    aliases: tuple[str, ...] = ()
    source: str = ""
    width: int = 1
    nm: tuple[int, int] = (0, 0)
    block: tuple[int, int] = (0, 0)
    round_to: int = 1

    @property
    def fixed_density(self) -> float | None:
        """``N / M`` for an N:M scheme (the fraction of a row it keeps, whatever density
        is asked for), else None."""
        return self.nm[0] / self.nm[1] if self.group is Group.NM else None

    def kept_units(self, units: int, density: float) -> int:
        """Output units a unit-removing scheme keeps of ``units`` at ``density``: the
        nearest whole number (at least 1), rounded up to a multiple of
        :attr:`round_to` (at most ``units``)."""
        kept = max(1, round(density * units))
        if self.round_to > 1:
            kept = min(units, -(-kept // self.round_to) * self.round_to)
        return kept

    @property
    def parametric(self) -> bool:
        """An N:M, block or rounded-node scheme (named by its parameters)."""
        return self.group in (Group.NM, Group.BLOCK) or self.round_to > 1

    @property
    def prunes(self) -> bool:
        """False for ``dense`` alone: the scheme removes weights."""
        return self.group is not Group.NONE

    @property
    def conv_only(self) -> bool:
        """Groups that exist only in convolutions (kernel rows, kernels): on a fully
        connected layer (1x1 kernel) they are single weights, the ``fine`` scheme."""
        return self.group in (Group.KERNEL_ROW, Group.KERNEL)

    def group_width(self, kernel: tuple[int, int], simd_lanes: int) -> int:
        """Weights per group along a weight row: the device's SIMD lanes for ``simd``,
        ``S`` for a kernel row, ``R x S`` for a kernel, :attr:`width` for a fixed
        group, else 1 (a unit is a whole row, whose width the kernel does not use)."""
        if self.group is Group.SIMD:
            return max(1, int(simd_lanes))
        if self.group is Group.KERNEL_ROW:
            return int(kernel[1])
        if self.group is Group.KERNEL:
            return int(kernel[0]) * int(kernel[1])
        if self.group is Group.FIXED:
            return int(self.width)
        if self.group is Group.BLOCK:
            return int(self.block[1])
        return 1

    def on(self, is_matvec: bool) -> "Scheme":
        """The scheme as it runs on a layer: kernel-row and kernel groups of a fully
        connected layer are single weights, so it runs as ``fine`` there."""
        return scheme("fine") if is_matvec and self.conv_only else self

    def __str__(self) -> str:
        return self.name


_REGISTRY: dict[str, Scheme] = {}
_NAMES: dict[str, str] = {}


def register(s: Scheme) -> Scheme:
    """Add ``s`` to the registry (an :class:`InputError` if a name is taken)."""
    for n in (s.name, *s.aliases):
        if n in _NAMES:
            raise InputError(f"scheme name {n!r} is already registered (by {_NAMES[n]!r})")
    _REGISTRY[s.name] = s
    for n in (s.name, *s.aliases):
        _NAMES[n] = s.name
    return s


def unregister(name: str) -> None:
    """Remove a scheme (tests that register a toy scheme clean up with this)."""
    s = _REGISTRY.pop(name)
    for n in (s.name, *s.aliases):
        _NAMES.pop(n, None)


def scheme(name: str | Scheme) -> Scheme:
    """The registered scheme called ``name`` (or one of its aliases); a parametric name
    (``N:M``, ``block-RxC``, ``node-roundK``) is registered on first use."""
    if isinstance(name, Scheme):
        return name
    key = str(name)
    if key not in _NAMES:
        made = _parametric(key)
        if made is None:
            raise UnknownNameError(f"unknown scheme {name!r}; accepted: " + ", ".join(names())
                                   + ", N:M (1 <= N < M <= 256), block-RxC, node-roundK")
        register(made)
    return _REGISTRY[_NAMES[key]]


_ROUND_NAME = re.compile(r"node-round(\d+)")
MAX_ROUND = 256
"""Largest multiple ``node-roundK`` may round to."""


def _parametric(name: str) -> Scheme | None:
    """The scheme a parametric name stands for (see the module docstring), an
    :class:`InputError` for parameters out of range, None for any other name."""
    if found := NM_NAME.fullmatch(name):
        return nm_scheme(*check_nm(int(found[1]), int(found[2])))
    if found := BLOCK_NAME.fullmatch(name):
        return block_scheme(*check_block(int(found[1]), int(found[2])))
    if found := _ROUND_NAME.fullmatch(name):
        k = int(found[1])
        if not 2 <= k <= MAX_ROUND:
            raise InputError(f"node-roundK rounds kept units to a multiple of K, 2 <= K <= "
                             f"{MAX_ROUND}, got {name!r} (accepted: node-round8, node-round16, ...)")
        return rounded_node_scheme(k)
    return None


def nm_scheme(n: int, m: int, aliases: tuple[str, ...] = ()) -> Scheme:
    """The N:M scheme (not registered: :func:`scheme` registers it by name)."""
    return Scheme(
        f"{n}:{m}", f"the {n} largest of every {m} consecutive weights of a row (N:M), "
        f"{metadata_bits(m)}-bit metadata per kept value", Group.NM, Kernel.NM,
        f"{n}:{m}", aliases=aliases, nm=(n, m),
        source="Mishra et al., arXiv:2104.08378 (NVIDIA Ampere sparse tensor cores), 2021")


def block_scheme(r: int, c: int, aliases: tuple[str, ...] = ()) -> Scheme:
    """The ``block-RxC`` scheme (not registered: :func:`scheme` registers it by name)."""
    return Scheme(
        f"block-{r}x{c}", f"{r} x {c} blocks of the weight matrix ({r} rows, {c} consecutive "
        "columns), one index per block (BSR)", Group.BLOCK, Kernel.BLOCK, f"block-{r}x{c}",
        aliases=aliases, block=(r, c), source="Gray, Radford & Kingma, 'GPU kernels for "
        "block-sparse weights', OpenAI 2017; Narang et al., arXiv:1711.02782, 2017")


def rounded_node_scheme(k: int) -> Scheme:
    """``node`` with kept units rounded up to a multiple of ``k`` (not registered)."""
    return Scheme(
        f"node-round{k}", f"node pruning, kept filters or neurons rounded up to a multiple of "
        f"{k} (the SIMD or tensor-core width)", Group.ROW, Kernel.COMPACT, "dense",
        removes_units=True, masks_consumers=True, round_to=k,
        source="Yu et al. (Scalpel), ISCA 2017; Fang et al. (Torch-Pruning, round_to), CVPR 2023")


def names(pruning_only: bool = False) -> tuple[str, ...]:
    """Registered scheme names in registration order (``dense`` first)."""
    return tuple(n for n, s in _REGISTRY.items() if s.prunes or not pruning_only)


def all_schemes() -> tuple[Scheme, ...]:
    return tuple(_REGISTRY.values())


DENSE = register(Scheme(
    "dense", "every weight kept and stored dense", Group.NONE, Kernel.DENSE, "dense"))
FINE = register(Scheme(
    "fine", "single weights (fine-grained), stored CSR", Group.WEIGHT, Kernel.CSR, "csr",
    aliases=("csr",), source="Han et al., NIPS 2015"))
SIMD = register(Scheme(
    "simd", "groups of g = the device's SIMD lanes consecutive weights of a row, one index "
    "per group (SIMD-aware pruning)", Group.SIMD, Kernel.GROUP_CSR, "simd-group",
    aliases=("group-csr",), source="Yu et al. (Scalpel), ISCA 2017"))
VECTOR = register(Scheme(
    "vector", "kernel rows (1-D, S weights), one index per row; single weights on fc layers",
    Group.KERNEL_ROW, Kernel.GROUP_CSR, "simd-group", source="Mao et al., CVPR-W 2017"))
KERNEL = register(Scheme(
    "kernel", "whole 2-D kernels (R x S weights), one index per kernel; single weights on fc "
    "layers", Group.KERNEL, Kernel.GROUP_CSR, "simd-group", source="Mao et al., CVPR-W 2017"))
FILTER = register(Scheme(
    "filter", "whole filters or neurons (3-D), the layer runs smaller and dense",
    Group.ROW, Kernel.COMPACT, "dense", removes_units=True, source="Mao et al., CVPR-W 2017"))
NODE = register(Scheme(
    "node", "whole filters or neurons and the next layer's weights that read them; the "
    "layers run smaller and dense", Group.ROW, Kernel.COMPACT, "dense", removes_units=True,
    masks_consumers=True, aliases=("compact",), source="Yu et al. (Scalpel), ISCA 2017"))
NM_2_4 = register(nm_scheme(2, 4, aliases=("nm",)))
NM_1_4 = register(nm_scheme(1, 4))
NM_4_8 = register(nm_scheme(4, 8))
BLOCK = register(block_scheme(4, 4, aliases=("block",)))
