"""Granularity per layer from the simulators alone, at a density the user expects.

For a network with no trained weights here (a built-in network, an ONNX file, an
imported PyTorch module), how far each scheme can prune within an accuracy tolerance
cannot be measured; :mod:`hwprune.studies.scalpel` does that for the reference models.
This module asks the other half of Scalpel's question: if every scheme reached the
given ``density``, which one runs fastest on the device? Candidates are the registered
schemes of :data:`CANDIDATES` (fine-grained, SIMD-aware with ``g`` = the device's SIMD
width where a group fits a weight row, and node pruning, not on the last layer, whose
outputs leave the network). The choice, the settling of cross-layer effects and the
table are :mod:`hwprune.studies.choice`'s.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..checks import check_density
from ..hardware.profile import DeviceProfile
from ..latency.work import KernelShape
from ..schemes import FINE, NODE, SIMD, Scheme, scheme
from ..workload.network import Network
from .choice import Choice, Option, choose

CANDIDATES: tuple[Scheme, ...] = (FINE, SIMD, NODE)
"""Schemes weighed by default."""


def fits(s: Scheme, shape: KernelShape, simd_lanes: int, last: bool) -> bool:
    """Whether ``s`` can prune a layer of ``shape``: a group no wider than a weight row,
    and no unit removal on the network's last conv/fc layer."""
    if s.removes_units and last:
        return False
    return s.group_width(shape.kernel, simd_lanes) <= shape.cols


def recommend_choice(net: Network, dev: DeviceProfile, density: float,
                     candidates: Sequence[Scheme | str] = CANDIDATES) -> Choice:
    """The per-layer choice if every candidate reached ``density`` on every layer."""
    density = check_density(density)
    schemes = [scheme(s) for s in candidates]
    last = net.weighted_layers[-1].name
    per_layer = {}
    for lay in net.weighted_layers:
        shape = KernelShape.of(lay)
        per_layer[lay.name] = [Option(s, density) for s in schemes
                               if fits(s, shape, dev.compute.simd_lanes, lay.name == last)]
    return choose(net, dev, per_layer)


def recommend(net: Network, dev: DeviceProfile, density: float,
              candidates: Sequence[Scheme | str] = CANDIDATES) -> pd.DataFrame:
    """:meth:`Choice.table` of :func:`recommend_choice` (columns documented there)."""
    return recommend_choice(net, dev, density, candidates).table()
