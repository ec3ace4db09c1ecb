"""Latency of a layer without MACs: one pass over its tensors, per device class.

The pass (:class:`~hwprune.workload.passes.PassWork`, per sample, times the batch)
reads ``reads`` elements, writes ``writes`` and does ``ops`` element operations, each
one slot of the device's multiply-accumulate datapath. ``folded`` and ``view`` passes
take no time; a ``fused`` pass adds its operations to the producing kernel, with no
memory traffic and no launch of its own. Per class (units: device clock cycles):

* **mcu** (in-order core, q15 elements, one halfword each; the rules and ``[latency]``
  keys of :mod:`hwprune.latency.mcu`): a ``stream`` runs per output element one run of
  ``k = reads / writes`` (rounded up) halfword loads, its operations as ALU
  instructions (``alu_cycles`` each), a pipelined store, and the loop overhead over
  ``k + 1`` pointers unrolled ``loop_unroll`` times:
  ``load + (k - 1) * pipelined_load + ops * alu + pipelined_load + loop``.
  A ``copy`` is a word copy (``memcpy``): an LDR/STR pair per 32-bit word in one run,
  ``2 * pipelined_load`` per word, as the im2col copy of :mod:`hwprune.latency.mcu`.
  A ``fused`` pass: ``ops * alu``. No SIMD: CMSIS-NN's q7 activations pack four values
  per word, so this overstates them.
* **cpu**: the operations issue on the vector units at the dense GEMV's rate, one
  ``dense_mac_cycles`` each (a vectorized add or compare takes the slot of a vectorized
  multiply-add); a copy at ``im2col_element_cycles`` per element written; the bytes
  moved (reads + writes) over the bandwidth of the level that holds them
  (:func:`hwprune.latency.cpu.memory_terms`). ``cycles = max(issue, memory)``: a
  streaming pass overlaps loads and arithmetic.
* **gpu**: one kernel launch, then ``max(dram, compute)``: the bytes over the DRAM
  bandwidth at ``dram_efficiency`` (a streaming kernel's achieved fraction), the
  operations over the peak rate (``units * macs_per_unit_per_cycle``).
* **accelerator**: the operations spread over every PE (``units *
  macs_per_unit_per_cycle`` per cycle) and the bytes move through the outermost
  level that holds inputs and outputs, ``max(compute, level)``. *Simplification:*
  Eyeriss-class arrays have no vector unit of their own for normalization or
  activations; the model runs them on the PE array at its MAC rate.
"""

from __future__ import annotations

import math

from ..hardware.profile import DeviceProfile
from ..workload.passes import PassWork
from .cpu import memory_terms
from .estimate import LatencyEstimate, latency_param, make_estimate
from .gpu import GpuParams
from .mve import lanes as mve_lanes


def _mcu(work: PassWork, dev: DeviceProfile, batch: int) -> tuple[dict[str, float], str]:
    if "vector_bytes" in dev.latency:
        return _mve(work, dev, batch)
    alu = latency_param(dev, "alu_cycles")
    ops = work.ops * batch * alu
    if work.runs_as == "fused":
        return {"issue": ops}, "issue"
    lp = latency_param(dev, "pipelined_load_cycles")
    if work.runs_as == "copy":
        words = math.ceil(work.writes * batch * dev.element_bytes / 4)
        return {"copy": 2 * lp * words}, "copy"
    load = latency_param(dev, "load_cycles")
    branch = latency_param(dev, "branch_cycles")
    unroll = latency_param(dev, "loop_unroll")
    k = math.ceil(work.reads / work.writes)
    loop = ((k + 2) * alu + branch) / unroll
    per_output = load + (k - 1) * lp + lp + loop
    return {"issue": ops + work.writes * batch * per_output}, "issue"


def _mve(work: PassWork, dev: DeviceProfile, batch: int) -> tuple[dict[str, float], str]:
    """A pass on a vector microcontroller (:mod:`hwprune.latency.mve`'s rules): ``V``
    outputs per vector instruction; per output vector ``k`` vector loads and a store on
    the load/store pipe, the operations as vector instructions (``mac_cycles`` each) on
    the other pipe, the busier pipe paying; a copy is a VLDRB + VSTRB per vector."""
    v = mve_lanes(dev)
    load = latency_param(dev, "load_cycles")
    ops = math.ceil(work.ops * batch / v) * latency_param(dev, "mac_cycles")
    if work.runs_as == "fused":
        return {"issue": ops}, "issue"
    vectors = math.ceil(work.writes * batch / v)
    if work.runs_as == "copy":
        return {"copy": 2 * load * vectors}, "copy"
    k = math.ceil(work.reads / work.writes)
    return {"issue": max(vectors * (k + 1) * load, ops)}, "issue"


def _cpu(work: PassWork, dev: DeviceProfile, batch: int) -> tuple[dict[str, float], str]:
    issue = work.ops * batch * latency_param(dev, "dense_mac_cycles")
    if work.runs_as == "copy":
        issue += work.writes * batch * latency_param(dev, "im2col_element_cycles")
    if work.runs_as == "fused":
        return {"issue": issue}, "issue"
    moved = (work.reads + work.writes) * batch * dev.element_bytes
    memory = {f"{name.lower()}_bandwidth": v for name, v in memory_terms(dev, moved, moved).items()}
    slowest = max(memory, key=memory.get) if memory else None
    if slowest is None or issue >= memory[slowest]:
        return {"issue": issue, **memory}, "issue"
    return {"issue": issue, **memory}, slowest


def _peak(dev: DeviceProfile) -> float:
    return dev.compute.units * dev.compute.macs_per_unit_per_cycle


def _gpu(work: PassWork, dev: DeviceProfile, batch: int) -> tuple[dict[str, float], str]:
    compute = work.ops * batch / _peak(dev)
    if work.runs_as == "fused":
        return {"compute": compute}, "compute"
    g = GpuParams(dev)
    parts = {"dram": g.dram_cycles((work.reads + work.writes) * batch * g.elem), "compute": compute}
    bound = max(parts, key=parts.get)
    return {**parts, "launch": g.launch}, bound


def _accelerator(work: PassWork, dev: DeviceProfile, batch: int) -> tuple[dict[str, float], str]:
    compute = work.ops * batch / _peak(dev)
    if work.runs_as == "fused":
        return {"compute": compute}, "compute"
    eb = dev.element_bytes
    parts = {"compute": compute}
    for operand, elements in (("inputs", work.reads), ("outputs", work.writes)):
        lvl = [m for m in dev.memory if operand in m.holds][-1]
        parts[lvl.name] = parts.get(lvl.name, 0.0) + elements * batch * eb / (
            lvl.bandwidth_bytes_per_cycle * lvl.instances)
    return parts, max(parts, key=parts.get)


_MODELS = {"mcu": _mcu, "cpu": _cpu, "gpu": _gpu, "accelerator": _accelerator}


def pass_latency(work: PassWork, dev: DeviceProfile, batch: int = 1) -> LatencyEstimate:
    """Predicted time of the pass ``work`` for ``batch`` samples on ``dev`` (module
    docstring). Folded and view passes take 0 cycles (bound ``none``)."""
    if work.runs_as in ("folded", "view"):
        return make_estimate(dev, 0.0, "none", {})
    parts, bound = _MODELS[dev.device_class](work, dev, batch)
    if dev.device_class == "gpu" and work.runs_as != "fused":
        cycles = parts["launch"] + max(parts["dram"], parts["compute"])
    elif dev.device_class == "mcu":
        cycles = sum(parts.values())
    else:
        cycles = max(parts.values())
    return make_estimate(dev, cycles, bound, parts)
