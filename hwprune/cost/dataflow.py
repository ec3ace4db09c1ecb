"""Dataflow presets: which loops a device unrolls in space, and which operand stays put.

A dataflow constrains the mapping search (:mod:`hwprune.cost.mapper`):

* ``spatial``: for each axis of the PE array (rows, then columns) the loop
  dimensions that may be unrolled across it, in order of preference. Devices without
  an array (cpu, gpu, mcu) have one axis of ``units`` cores or SMs.
* ``stationary``: the operand that stays in the innermost level while the loops of
  the level above it run (:data:`STATIONARY`); the orders of the levels above that are
  searched. ``None`` lets the search choose at every level.
* ``pinned``: dimensions the innermost level always holds in full.

Presets:

``row-stationary`` (Chen et al., ISCA 2016): filter rows (R) down the array rows,
output rows (E) across the columns, so input rows are shared diagonally, filter rows
horizontally and partial sums accumulate vertically; a PE holds a whole filter row
(S pinned in the RF). Needs a PE array.

``weight-stationary``: input channels (C) down the rows, output channels (M) across
the columns; weights stay in the PEs while inputs and outputs stream.

``output-stationary``: output pixels (E, F) spread over the array; each PE accumulates
its outputs in place.

``cache-tiling``: the blocked loop nest of a CPU/GPU/MCU kernel: output channels,
batch or output rows split across cores/SMs (no cross-core reduction), loop order
and tile sizes chosen per cache level by the search.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError, UnknownNameError
from ..hardware.profile import DATAFLOWS, DeviceProfile
from .loopnest import DIMS

STATIONARY = ("outputs", "weights", "inputs")
"""Order choices at a level: the operand whose tile stays in the level below while the
innermost loops run (index 0, 1, 2 in the mapper)."""

REDUCTION_DIMS = ("C", "R", "S")


@dataclass(frozen=True)
class Dataflow:
    """A dataflow preset (see the module docstring)."""

    name: str
    spatial: tuple[tuple[str, ...], ...]
    stationary: str | None
    pinned: tuple[str, ...] = ()
    needs_array: bool = False
    description: str = ""


PRESETS = {
    "row-stationary": Dataflow(
        "row-stationary", (("R", "C", "M"), ("E", "N", "M")), None, ("S",), True,
        "filter rows down the array, output rows across; S held in the RF"),
    "weight-stationary": Dataflow(
        "weight-stationary", (("C", "R", "S"), ("M",)), "weights", (),
        False, "input channels down the array, output channels across; weights stay"),
    "output-stationary": Dataflow(
        "output-stationary", (("E", "M"), ("F", "N")), "outputs", (),
        False, "output pixels across the array; partial sums stay"),
    "cache-tiling": Dataflow(
        "cache-tiling", (("M", "N", "E", "F"),), None, (),
        False, "blocked loops per cache level, work split across cores without reduction"),
}
assert tuple(PRESETS) == DATAFLOWS


def get_dataflow(name: str, device: DeviceProfile) -> Dataflow:
    """The preset called ``name``, checked against what ``device`` can run."""
    if name not in PRESETS:
        raise UnknownNameError(f"unknown dataflow {name!r}; accepted: " + ", ".join(PRESETS))
    flow = PRESETS[name]
    has_array = device.compute.array_rows is not None
    if flow.needs_array and not has_array:
        raise InputError(
            f"dataflow {name!r} needs a 2-D PE array (array_rows/array_cols), which device "
            f"{device.id!r} does not have; use one of: "
            + ", ".join(n for n, p in PRESETS.items() if not p.needs_array)
        )
    flow = _constrained(flow, device)
    inner = device.level_loops(device.memory[0].name)
    if inner is not None and any(d not in inner for d in flow.pinned):
        raise InputError(
            f"device {device.id!r} ({device.origin or 'profile'}): its [mapping.levels] "
            f"{device.memory[0].name} = {list(inner)} leaves out {', '.join(flow.pinned)}, which "
            f"dataflow {name!r} holds whole in the innermost level; add it or choose another "
            "dataflow")
    has_noc = any(lvl.kind == "noc" for lvl in device.memory)
    reduces = any(d in REDUCTION_DIMS for axis in flow.spatial for d in axis)
    if reduces and not has_noc:
        # Without an on-chip network, partial sums cannot be added across units:
        # drop the reduction dimensions from the spatial choices.
        axes = tuple(tuple(d for d in axis if d not in REDUCTION_DIMS) for axis in flow.spatial)
        flow = Dataflow(flow.name, tuple(a for a in axes if a) or (("M",),), flow.stationary,
                        flow.pinned, flow.needs_array, flow.description)
    return flow


def _constrained(flow: Dataflow, device: DeviceProfile) -> Dataflow:
    """``flow`` with each array axis limited to the dimensions the profile's ``[mapping]
    spatial`` constraint allows there (an error where none is left)."""
    allowed = device.mapping_spatial
    if not allowed:
        return flow
    if len(allowed) == 2 and len(flow.spatial) == 2:
        axes = tuple(tuple(d for d in axis if d in ok) for axis, ok in zip(flow.spatial, allowed))
    else:           # one axis of units: every axis of the dataflow lands on it
        axes = tuple(tuple(d for d in axis if d in allowed[0]) for axis in flow.spatial)
        axes = tuple(a for a in axes if a) or ((),)
    for i, axis in enumerate(axes):
        if not axis:
            raise InputError(
                f"device {device.id!r} ({device.origin or 'profile'}): its [mapping] spatial "
                f"constraint {list(allowed[min(i, len(allowed) - 1)])} leaves dataflow "
                f"{flow.name!r} nothing to unroll on axis {i} (the dataflow unrolls "
                f"{list(flow.spatial[i]) if i < len(flow.spatial) else []} there); choose "
                "another dataflow or widen the constraint")
    return Dataflow(flow.name, axes, flow.stationary, flow.pinned, flow.needs_array,
                    flow.description)


def array_axes(device: DeviceProfile, flow: Dataflow) -> tuple[int, ...]:
    """Sizes of the spatial axes the dataflow unrolls over on ``device``."""
    c = device.compute
    if c.array_rows is not None and len(flow.spatial) == 2:
        return (c.array_rows, c.array_cols)
    return (c.units,)


assert all(d in DIMS for p in PRESETS.values() for axis in p.spatial for d in axis)
