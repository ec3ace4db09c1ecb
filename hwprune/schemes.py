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
``fine``, groups for ``simd``/``vector``/``kernel``, output units for
``filter``/``node``.

Every other module takes a :class:`Scheme`, never a name; names are looked up here
once, at the edge (:func:`scheme`). Adding a scheme is one :func:`register` call; its
mask (``hwprune.prune.granularity``), storage (``hwprune.sparse.storage``) and kernel
(``hwprune.sparse.formats``) are found through the fields above. A test registers a
toy scheme this way and runs it through ``evaluate``, ``recommend`` and a sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import InputError, UnknownNameError


class Kernel(str, Enum):
    """The kernels (sparse formats) hwprune executes and prices; the values are the
    format names of :mod:`hwprune.sparse.formats`."""

    DENSE = "dense"
    CSR = "csr"
    GROUP_CSR = "group-csr"
    COMPACT = "compact"


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


@dataclass(frozen=True)
class Scheme:
    """One way to prune and run a layer (see the module docstring).

    Attributes:
        name: the name the CLI and the API accept.
        description: one line for help texts and docs.
        group: what one mask group is.
        kernel: the kernel that executes the pruned layer.
        storage: the storage format of its weights (``dense``, ``csr``,
            ``simd-group``: :data:`hwprune.sparse.storage.FORMATS`).
        removes_units: whole output units go, so the layer and the inputs of the
            layers reading it shrink.
        masks_consumers: while training, the weights of the next layer that read a
            removed unit are masked as well (node pruning); ``filter`` leaves them,
            and they are removed when the network is deployed.
        aliases: further accepted names (the kernel names that earlier versions of
            ``hwprune latency --scheme`` took).
        source: where the scheme comes from.
        width: weights per group of a :attr:`Group.FIXED` scheme.
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
    """The registered scheme called ``name`` (or one of its aliases)."""
    if isinstance(name, Scheme):
        return name
    try:
        return _REGISTRY[_NAMES[str(name)]]
    except KeyError:
        raise UnknownNameError(f"unknown scheme {name!r}; accepted: " + ", ".join(names())) from None


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
