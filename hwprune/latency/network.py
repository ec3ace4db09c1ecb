"""Latency of a network's layers per device class, latency-density curves and
break-even densities."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..checks import check_batch
from ..cost.energy import fits_memory
from ..cost.passes import pass_fits
from ..errors import InputError
from ..hardware.profile import DeviceProfile
from ..schemes import DENSE, FINE, NODE, SIMD, Scheme, scheme
from ..workload.layer import Layer
from ..workload.network import Network
from ..workload.ops import CATEGORIES
from ..workload.passes import KERNEL, pass_works
from .accelerator import accelerator_latency
from .cpu import cpu_latency
from .estimate import LatencyEstimate
from .gpu import gpu_latency
from .mcu import mcu_latency
from .passes import pass_latency
from .work import KernelShape, kernel_work, runs_as

BREAKEVEN_SCHEMES = (FINE, SIMD, NODE)
"""Schemes :func:`breakeven` compares against dense on every device."""


def accelerated_schemes(dev: DeviceProfile) -> tuple[Scheme, ...]:
    """The schemes ``dev``'s profile says its hardware is built for: the N:M patterns
    of ``[sparsity] structured`` and, where ``channel_multiple`` is above 1, node
    pruning rounded to that multiple (``node-roundK``)."""
    out = tuple(scheme(p) for p in dev.sparsity.structured)
    if dev.sparsity.channel_multiple > 1:
        out += (scheme(f"node-round{dev.sparsity.channel_multiple}"),)
    return out


def default_schemes(dev: DeviceProfile) -> tuple[Scheme, ...]:
    """:data:`BREAKEVEN_SCHEMES` and :func:`accelerated_schemes`: what :func:`breakeven`
    and :func:`latency_curves` compare by default."""
    return BREAKEVEN_SCHEMES + accelerated_schemes(dev)

FLOOR = 0.01
"""Lowest density :func:`breakeven` looks at ("never" means: not above 1%)."""

CURVE_DENSITIES = tuple(float(d) for d in np.round(np.concatenate(
    [np.linspace(1.0, 0.1, 10), np.geomspace(0.1, FLOOR, 5)[1:]]), 4))
"""Densities of the latency-density curves (1 down to 1%)."""


def layer_latency(layer: Layer, dev: DeviceProfile, pruning: Scheme | str = DENSE,
                  density: float = 1.0, act_density: float = 1.0,
                  batch: int = 1, unpruned: Layer | None = None) -> LatencyEstimate:
    """Predicted latency of ``layer``'s kernel on ``dev`` for ``batch`` inputs processed
    together, with its weights pruned by scheme ``pruning`` to ``density`` (see
    :mod:`hwprune.latency.work`). ``unpruned``: the layer as it was before earlier
    layers removed some of its inputs, when they did (an accelerator runs any mapping
    of the larger layer; the other classes' kernels need no hint)."""
    work = kernel_work(KernelShape.of(layer, check_batch(batch)), pruning, density,
                       dev.compute.simd_lanes)
    cls = dev.device_class
    if cls != "accelerator":     # an accelerator's energy model prices every format itself
        work = runs_as(work, dev.sparsity.runs_natively(work.scheme.name))
    if cls == "mcu":
        return mcu_latency(work, dev)
    if cls == "cpu":
        return cpu_latency(work, dev)
    if cls == "gpu":
        return gpu_latency(work, dev)
    return accelerator_latency(work, layer, dev, act_density, unpruned=unpruned)


def _schemes_for(layer: Layer, schemes: Sequence[Scheme], last: bool) -> list[Scheme]:
    """The schemes that apply to ``layer`` and differ from each other there: on a fully
    connected layer the kernel-row and kernel schemes are ``fine`` and are left out, and
    on the network's last conv/fc layer (``last``) no scheme may remove units, whose
    outputs leave the network."""
    fc = KernelShape.of(layer).is_fc
    return [s for s in schemes if not (fc and s.conv_only) and not (last and s.removes_units)]


def network_latency(net: Network, dev: DeviceProfile, pruning: Scheme | str = DENSE,
                    density: float = 1.0, batch: int = 1) -> pd.DataFrame:
    """One row per layer of ``net``, for ``batch`` inputs processed together: conv/fc
    layers and matmuls between two activations (dense: no weights to prune) as their
    kernels run, every other layer as a pass (:mod:`hwprune.latency.passes`; folded
    and view layers take 0 s). Columns: ``layer``, ``kind``, ``category``, ``runs_as``,
    ``scheme`` (as it runs on the layer: ``vector``/``kernel`` groups of a fully
    connected layer are single weights, so it runs ``fine``; ``dense`` on a pass),
    ``density``, ``cycles``, ``seconds``, ``bound`` (the limiting term), ``fits_memory``
    (its dense tensors fit the device's memories, as the energy table says; the
    latency assumes they do) and one ``<term>_cycles`` column per term of the models
    (0 where a row's model has no such term). The network's time is the sum of the
    rows (layers run one after another)."""
    pruning = scheme(pruning)
    batch = check_batch(batch)
    passes = pass_works(net)
    rows = []
    for layer in net.layers:
        row = {"layer": layer.name, "kind": layer.kind, "category": CATEGORIES[layer.kind]}
        if layer.name in passes:
            work = passes[layer.name]
            est = pass_latency(work, dev, batch)
            row.update({"runs_as": work.runs_as, "scheme": DENSE.name, "density": 1.0,
                        "fits_memory": pass_fits(work, dev, batch)})
        else:
            used = pruning.on(KernelShape.of(layer).is_fc) if layer.has_weights else DENSE
            est = layer_latency(layer, dev, used, density, batch=batch)
            row.update({"runs_as": KERNEL, "scheme": used.name,
                        "density": 1.0 if not used.prunes else float(used.fixed_density or density),
                        "fits_memory": fits_memory(layer, dev, batch)})
        row.update({"cycles": est.cycles, "seconds": est.seconds, "bound": est.bound})
        row.update({f"{k}_cycles": v for k, v in est.parts.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    terms = [c for c in df.columns if c.endswith("_cycles")]
    df[terms] = df[terms].fillna(0.0)
    order = ["layer", "kind", "category", "runs_as", "scheme", "density", "cycles", "seconds", "bound",
             "fits_memory"]
    return df[order + terms]


def latency_curves(net: Network, dev: DeviceProfile,
                   schemes: Sequence[Scheme | str] | None = None,
                   densities: Sequence[float] = CURVE_DENSITIES, batch: int = 1) -> pd.DataFrame:
    """Long table of predicted seconds for ``batch`` inputs: ``layer``, ``scheme``
    (``dense`` included once per layer), ``density``, ``seconds``, ``cycles``, ``bound``.
    An N:M scheme has one row, at its own density ``N / M``. ``schemes``: default
    :func:`default_schemes`."""
    schemes = [scheme(s) for s in (schemes or default_schemes(dev))]
    rows = []
    for layer in net.weighted_layers:
        dense = layer_latency(layer, dev, DENSE, batch=batch)
        for d in densities:
            rows.append({"layer": layer.name, "scheme": DENSE.name, "density": float(d),
                         "seconds": dense.seconds, "cycles": dense.cycles, "bound": dense.bound})
        for s in _schemes_for(layer, schemes, layer is net.weighted_layers[-1]):
            for d in ([s.fixed_density] if s.fixed_density else densities):
                est = layer_latency(layer, dev, s, float(d), batch=batch)
                rows.append({"layer": layer.name, "scheme": s.name, "density": float(d),
                             "seconds": est.seconds, "cycles": est.cycles, "bound": est.bound})
    return pd.DataFrame(rows)


def crossing(seconds_at, dense_seconds: float, lo: float = FLOOR, steps: int = 7) -> float:
    """Largest density in ``[lo, 1]`` at which ``seconds_at(density) < dense_seconds``
    (strictly faster), assuming one crossing: 1.0 when sparse is already faster at full
    density, NaN when it is not faster even at ``lo``. A coarse scan, then ``steps`` bisections (the result
    is within ``(hi - lo) / 2^steps`` of the crossing)."""
    if seconds_at(1.0) < dense_seconds:
        return 1.0
    grid = [1.0, 0.8, 0.6, 0.45, 0.3, 0.2, 0.12, 0.07, 0.04, 0.02, lo]
    above = 1.0
    for d in grid[1:]:
        if seconds_at(d) < dense_seconds:
            below = d
            break
        above = d
    else:
        return math.nan
    for _ in range(steps):
        mid = (above + below) / 2
        if seconds_at(mid) < dense_seconds:
            below = mid
        else:
            above = mid
    return below


def breakeven(net: Network, dev: DeviceProfile,
              schemes: Sequence[Scheme | str] | None = None, batch: int = 1) -> pd.DataFrame:
    """Per layer and scheme, the density below which the scheme beats dense for
    ``batch`` inputs processed together (schemes that remove units are left out on the
    last layer). ``schemes``: default :func:`default_schemes`.

    Columns: ``layer``, ``kind``, ``scheme``, ``dense_seconds``, ``breakeven_density``
    (NaN: never faster above 1% density; 1.0: faster even unpruned),
    ``seconds_at_10pct`` (the format at density 0.1) and ``speedup_at_10pct``
    (dense seconds / that). An N:M scheme runs at its own density ``N / M`` only: its
    break-even is ``N / M`` where it beats dense there (else NaN), and its ``_at_10pct``
    columns are at ``N / M``.
    """
    schemes = [scheme(s) for s in (schemes or default_schemes(dev))]
    if DENSE in schemes:
        raise InputError("breakeven compares pruning schemes with dense; drop 'dense' "
                         "from the schemes")
    rows = []
    for layer in net.weighted_layers:
        dense = layer_latency(layer, dev, DENSE, batch=batch).seconds
        for s in _schemes_for(layer, schemes, layer is net.weighted_layers[-1]):
            def seconds_at(d: float, s=s, layer=layer) -> float:
                return layer_latency(layer, dev, s, d, batch=batch).seconds
            tenth = seconds_at(0.1)
            if s.fixed_density:
                even = s.fixed_density if tenth < dense else math.nan
            else:
                even = crossing(seconds_at, dense)
            rows.append({"layer": layer.name, "kind": layer.kind, "scheme": s.name,
                         "dense_seconds": dense, "breakeven_density": even,
                         "seconds_at_10pct": tenth, "speedup_at_10pct": dense / tenth})
    if not rows:
        raise InputError(
            f"none of the schemes {', '.join(s.name for s in schemes)} differs from fine on a "
            f"layer of {net.name!r}: kernel-row and kernel groups exist in convolutions only, "
            "and it has none; compare fine, simd or node instead")
    return pd.DataFrame(rows)
