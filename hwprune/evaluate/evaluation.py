"""``evaluate(net, dev, plan, batch) -> Evaluation``: the one place where energy,
latency and storage of a pruned network meet.

Per conv/fc layer, under the plan (:mod:`hwprune.evaluate.plan`):

* **shape**: the layer as it runs, smaller when it or a layer before it removed units;
* **energy**: the loop-nest model (:func:`hwprune.cost.energy.layer_cost`) at the
  layer's density, with the scheme's storage format and group width;
* **latency**: the device class's latency model
  (:func:`hwprune.latency.network.layer_latency`) with the scheme's kernel, for the
  whole batch at once (a fully connected layer at batch ``b`` is a matrix-matrix
  product with ``b`` columns, its weights reused across the batch);
* **bytes**: the scheme's storage of the layer's weights
  (:func:`hwprune.sparse.storage.storage_cost`): values, indices and row pointers at
  the device's element and index widths.

Every other layer, which no plan prunes (a matmul between two activations, and the
layers without MACs: normalization, activations, element-wise, pooling, data
movement), is priced as the energy and latency tables price it
(:func:`hwprune.cost.energy.pass_cost`, :func:`hwprune.latency.passes.pass_latency`),
with the channels the plan leaves it (:func:`hwprune.evaluate.plan.kept_entries`): a
node-pruned layer's batch norm, add and pooling shrink with it. These are
:attr:`Evaluation.fixed`, evaluated for the whole network only (an evaluation
restricted to some ``layers`` has none).

The results are typed and add up: :attr:`Evaluation.total` is the sum of the layers'
and the fixed layers' :class:`Cost` (equal, for a dense plan, to the energy and
latency tables' totals), and ``Cost + Cost`` adds. :meth:`Evaluation.to_frame` is the documented
table. Every policy, study and table in hwprune prices a pruned network through this
function and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import pandas as pd

from ..checks import check_batch
from ..cost.dataflow import get_dataflow
from ..cost.densities import Density
from ..cost.energy import LayerCost, layer_cost, pass_cost
from ..cost.loopnest import LoopNest
from ..errors import InputError
from ..hardware.profile import DeviceProfile
from ..latency.estimate import LatencyEstimate
from ..latency.network import layer_latency
from ..latency.passes import pass_latency
from ..latency.work import KernelShape
from ..schemes import Scheme
from ..sparse.storage import StorageCost, storage_cost
from ..workload.layer import Layer
from ..workload.network import Network
from ..workload.passes import KERNEL, pass_works, shrunk, stored_as_read
from .plan import LayerPlan, LayerShape, Plan, kept_entries, shapes_as_run


@dataclass(frozen=True)
class Cost:
    """What something costs on a device: ``energy`` (pJ, or MAC-equivalents on a
    device whose energies are normalized: :attr:`DeviceProfile.energy_unit`),
    ``latency_s`` (seconds) and ``bytes`` (stored weights, indices and pointers)."""

    energy: float = 0.0
    latency_s: float = 0.0
    bytes: float = 0.0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.energy + other.energy, self.latency_s + other.latency_s,
                    self.bytes + other.bytes)

    @staticmethod
    def sum(costs: Iterable["Cost"]) -> "Cost":
        total = Cost()
        for c in costs:
            total = total + c
        return total


@dataclass(frozen=True)
class LayerEvaluation:
    """One conv/fc layer under a plan on a device.

    Attributes:
        layer: layer name; ``kind``: ``conv`` or ``fc``.
        scheme: the scheme as it runs on the layer (kernel-row and kernel schemes run
            as ``fine`` on a fully connected layer).
        density: kept fraction of what the scheme removes, of the layer as it runs.
        outputs_kept, inputs_kept: fraction of the layer's output units and input
            channels (features) still there (< 1 after unit removal, its own or
            upstream).
        weights: weights of the unpruned layer; ``weights_kept``: weights stored and
            multiplied as it runs.
        energy: energy by memory level and operand (batch ``b``).
        latency: the latency estimate of the whole batch.
        storage: bytes of the stored weights.
        batch: inputs processed together.
    """

    layer: str
    kind: str
    scheme: Scheme
    density: float
    outputs_kept: float
    inputs_kept: float
    weights: int
    weights_kept: float
    energy: LayerCost
    latency: LatencyEstimate
    storage: StorageCost
    batch: int

    @property
    def cost(self) -> Cost:
        return Cost(self.energy.energy_pj, self.latency.seconds,
                    self.storage.total_bytes)

    @property
    def shrunk(self) -> bool:
        """True when the layer runs smaller than the unpruned one."""
        return self.outputs_kept < 1 or self.inputs_kept < 1


@dataclass(frozen=True)
class FixedLayerEvaluation:
    """A layer no plan prunes, as it runs under a plan: a matmul between two
    activations (``runs_as`` ``kernel``, priced dense) or a layer without MACs
    (``runs_as``: ``folded``, ``fused``, ``view``, ``copy``, ``stream``; see
    :mod:`hwprune.workload.passes`). ``outputs_kept``: fraction of its output's first
    axis the plan leaves; ``energy`` (batch ``b``) and ``latency`` as for
    :class:`LayerEvaluation`; it stores no weights."""

    layer: str
    kind: str
    runs_as: str
    outputs_kept: float
    energy: LayerCost
    latency: LatencyEstimate
    batch: int

    @property
    def cost(self) -> Cost:
        return Cost(self.energy.energy_pj, self.latency.seconds, 0.0)


FRAME_COLUMNS = ("layer", "kind", "runs_as", "scheme", "density", "outputs_kept", "inputs_kept",
                 "weights_kept", "energy", "latency_s", "bytes", "bound")
"""Columns of :meth:`Evaluation.to_frame` (see there)."""


@dataclass(frozen=True)
class Evaluation:
    """A plan on a device: one :class:`LayerEvaluation` per conv/fc layer, in order
    (iterating an evaluation goes over these), and one :class:`FixedLayerEvaluation`
    per other layer in ``fixed`` (empty when the evaluation was restricted to some
    layers).

    ``energy_unit`` is the device's (``pJ``, or ``MAC-equivalents`` for normalized
    energies)."""

    network: str
    device: str
    energy_unit: str
    batch: int
    layers: tuple[LayerEvaluation, ...]
    fixed: tuple[FixedLayerEvaluation, ...] = ()
    order: tuple[str, ...] = ()            # every evaluated layer's name, network order

    def __getitem__(self, name: str) -> LayerEvaluation:
        for le in self.layers:
            if le.layer == name:
                return le
        raise KeyError(name)

    def __iter__(self):
        return iter(self.layers)

    @property
    def total(self) -> Cost:
        """The conv/fc layers' costs plus the fixed layers'."""
        return Cost.sum(le.cost for le in self.layers) + Cost.sum(fe.cost for fe in self.fixed)

    @property
    def pruned_layers_total(self) -> Cost:
        """The conv/fc layers' costs only (what a plan's schemes act on)."""
        return Cost.sum(le.cost for le in self.layers)

    @property
    def weights_kept_fraction(self) -> float:
        """Weights kept over the unpruned network's weights (conv/fc layers)."""
        return sum(le.weights_kept for le in self.layers) / sum(le.weights for le in self.layers)

    def to_frame(self) -> pd.DataFrame:
        """One row per evaluated layer, in network order: the conv/fc layers and the
        fixed layers, so that the rows add up to :attr:`total`. Columns: ``layer``,
        ``kind``, ``runs_as`` (``kernel`` for conv/fc/matmul, else how the pass runs),
        ``scheme`` (``dense`` on a fixed layer), ``density`` (kept fraction of what the
        scheme removes), ``outputs_kept`` and ``inputs_kept`` (fractions of the
        unpruned layer's units and inputs; a fixed layer's inputs_kept is NaN),
        ``weights_kept`` (weights stored, of the unpruned layer's; NaN on a fixed
        layer), ``energy`` (in :attr:`energy_unit`, whole batch), ``latency_s`` (whole
        batch), ``bytes`` (weights, indices, pointers), ``bound`` (the latency model's
        limiting term)."""
        rows = {le.layer: {"layer": le.layer, "kind": le.kind, "runs_as": KERNEL,
                           "scheme": le.scheme.name, "density": le.density,
                           "outputs_kept": le.outputs_kept, "inputs_kept": le.inputs_kept,
                           "weights_kept": le.weights_kept / le.weights, "energy": le.cost.energy,
                           "latency_s": le.cost.latency_s, "bytes": le.cost.bytes,
                           "bound": le.latency.bound} for le in self.layers}
        rows.update({fe.layer: {"layer": fe.layer, "kind": fe.kind, "runs_as": fe.runs_as,
                                "scheme": "dense", "density": 1.0, "outputs_kept": fe.outputs_kept,
                                "inputs_kept": math.nan, "weights_kept": math.nan,
                                "energy": fe.cost.energy, "latency_s": fe.cost.latency_s,
                                "bytes": 0.0, "bound": fe.latency.bound} for fe in self.fixed})
        names = [n for n in self.order if n in rows] or list(rows)
        return pd.DataFrame([rows[n] for n in names], columns=list(FRAME_COLUMNS))


def evaluate(net: Network, dev: DeviceProfile, plan: Plan | None = None, batch: int = 1,
             layers: Sequence[str] | None = None) -> Evaluation:
    """Price ``plan`` (default: dense) for ``net`` on ``dev`` (module docstring).

    ``layers`` restricts the result to those layers (the plan's cross-layer effects
    are still derived from the whole network)."""
    plan = plan or Plan()
    batch = check_batch(batch)
    shapes = shapes_as_run(net, plan)
    flow = get_dataflow(dev.dataflow, dev)
    names = [lay.name for lay in net.weighted_layers]
    if layers is not None:
        unknown = [n for n in layers if n not in shapes]
        if unknown:
            raise InputError(f"network {net.name!r} has no conv/fc layer {unknown[0]!r}")
        names = [n for n in names if n in set(layers)]
    works = pass_works(net)
    reader = stored_as_read(net, works)
    out = [_layer(net[name], shapes[name], plan[name], dev, flow, batch,
                  plan[reader[name]].act_density if name in reader else 1.0) for name in names]
    fixed = _fixed_layers(net, dev, plan, flow, batch, works) if layers is None else ()
    evaluated = set(names) | {fe.layer for fe in fixed}
    return Evaluation(net.name, dev.id, dev.energy_unit, batch, tuple(out), fixed,
                      tuple(lay.name for lay in net.layers if lay.name in evaluated))


def _fixed_layers(net: Network, dev: DeviceProfile, plan: Plan, flow, batch: int,
                  works) -> tuple[FixedLayerEvaluation, ...]:
    """Every layer of ``net`` that is not conv/fc, priced with what ``plan`` leaves it
    (``works``: :func:`~hwprune.workload.passes.pass_works` of ``net``)."""
    kept = kept_entries(net, plan)
    out = []
    for lay in net.layers:
        if lay.has_weights:
            continue
        frac_out = kept[lay.name] / lay.output_shape[0] if lay.output_shape else 1.0
        if lay.name in works:
            frac_in = [kept.get(src, shape[0]) / shape[0] if shape else 1.0
                       for src, shape in zip(lay.inputs, lay.input_shapes)]
            work = shrunk(works[lay.name], lay, frac_in, frac_out)
            runs_as = work.runs_as
            energy, latency = pass_cost(work, dev, batch), pass_latency(work, dev, batch)
        else:           # a matmul between two activations: dense, as the tables price it
            runs_as = KERNEL
            energy = layer_cost(LoopNest.of(lay, batch), dev, flow, Density(), "dense")
            latency = layer_latency(lay, dev, batch=batch)
        out.append(FixedLayerEvaluation(lay.name, lay.kind, runs_as, frac_out, energy, latency, batch))
    return tuple(out)


def _layer(original: Layer, shape: LayerShape, lp: LayerPlan, dev: DeviceProfile, flow,
           batch: int, out_density: float = 1.0) -> LayerEvaluation:
    run = shape.layer
    kernel_shape = KernelShape.of(run)
    s = lp.scheme.on(kernel_shape.is_fc)
    density = (s.fixed_density or lp.density) if s.prunes else 1.0
    group = s.group_width(kernel_shape.kernel, dev.compute.simd_lanes)
    nest = LoopNest.of(run, batch)
    if s.removes_units:
        # The units the scheme removes are gone: a smaller layer, stored dense.
        n, m, *rest = nest.bounds
        nest = replace(nest, bounds=(n, s.kept_units(m, density), *rest))
        stored_density = 1.0
    else:
        stored_density = density
    _, m, c, _, _, r, k = nest.bounds
    rows, cols = m * nest.groups, c * r * k
    energy = layer_cost(nest, dev, flow, Density(stored_density, lp.act_density, out_density),
                        s.storage, group)
    latency = layer_latency(run, dev, s, density, lp.act_density, batch,
                            unpruned=original if run is not original else None)
    store = storage_cost(s.storage, rows, cols, stored_density, dev.element_bytes,
                         dev.sparsity.index_bits, group=group)
    kept = store.value_bytes / dev.element_bytes
    return LayerEvaluation(
        layer=original.name, kind=original.kind, scheme=s, density=float(density),
        outputs_kept=rows / original.output_shape[0], inputs_kept=shape.inputs_kept,
        weights=math.prod(original.weight_shape), weights_kept=float(kept), energy=energy,
        latency=latency, storage=store, batch=batch)
