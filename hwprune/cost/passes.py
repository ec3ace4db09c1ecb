"""Energy of a layer without MACs: one pass over its tensors (:mod:`hwprune.workload.passes`).

A ``stream`` or ``copy`` pass reads each input element once from the outermost memory
level holding inputs and passes it down every level that holds inputs to the
datapath (one read charged at each), crossing the network-on-chip once if the device
has one; each output element is written once at every level that holds outputs (and
crosses the NoC once). This is the same convention as the conv/fc layers' loop nests:
every layer reads its inputs from, and writes its outputs to, the outermost memory.
Each element operation costs one MAC's energy (``compute.mac_energy_pj``): an upper
bound for an add or a compare (Horowitz, ISSCC 2014: a 32-bit integer add costs 0.1
pJ, a 32-bit multiply 3.1 pJ), stated because no profile has an ALU energy of its own.

A ``fused`` pass costs its operations only; ``folded`` and ``view`` passes cost
nothing.
"""

from __future__ import annotations

import numpy as np

from ..hardware.profile import OPERANDS, DeviceProfile
from ..workload.passes import PassWork
from .search import device_arrays

_IN, _OUT = OPERANDS.index("inputs"), OPERANDS.index("outputs")


def pass_accesses(work: PassWork, dev: DeviceProfile, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Element reads and writes of ``work`` for ``batch`` samples, shaped like a
    :class:`~hwprune.cost.energy.LayerCost`'s: ``(storage levels [+ NoC], 3)`` with
    columns weights, inputs, outputs; the NoC row (last) holds transfers as reads."""
    arrays = device_arrays(dev)
    k = len(arrays.storage)
    rows = k + (1 if arrays.noc is not None else 0)
    reads, writes = np.zeros((rows, 3)), np.zeros((rows, 3))
    if not work.moves_data:
        return reads, writes
    reads[:k, _IN] = np.where(arrays.holds[:, _IN], work.reads * batch, 0.0)
    writes[:k, _OUT] = np.where(arrays.holds[:, _OUT], work.writes * batch, 0.0)
    if arrays.noc is not None:
        reads[k, _IN] = work.reads * batch
        reads[k, _OUT] = work.writes * batch
    return reads, writes


def pass_fits(work: PassWork, dev: DeviceProfile, batch: int = 1) -> bool:
    """Whether the pass's inputs and output for ``batch`` samples fit, together, the
    outermost memory level holding each (as conv/fc layers' ``fits_memory``)."""
    eb = dev.element_bytes
    need = {"inputs": work.reads * batch * eb, "outputs": work.writes * batch * eb}
    used: dict[str, float] = {}
    for op, nbytes in need.items():
        holder = [lvl for lvl in dev.memory if op in lvl.holds][-1]
        used[holder.name] = used.get(holder.name, 0.0) + nbytes
    return all(used[lvl.name] <= lvl.total_bytes for lvl in dev.memory if lvl.name in used)
