"""Granularity per layer from the simulators alone, at a density the user expects.

For a network with no trained weights here (a built-in network, an ONNX file, an
imported PyTorch module), how far each scheme can prune within an accuracy tolerance
cannot be measured; :mod:`hwprune.studies.scalpel` does that for the reference models.
This module asks the other half of Scalpel's question: if each scheme reached the
density the user expects of it, which one runs fastest on the device? The densities
(:func:`scheme_densities`) are either one number for every candidate of
:data:`CANDIDATES` (fine-grained, SIMD-aware with ``g`` = the device's SIMD width where
a group fits a weight row, and node pruning), or one per scheme, which also names the
candidates: ``fine=0.1,simd=0.15,node=0.5``. Coarser groups reach less sparsity at the
same accuracy (Mao et al. 2017), so equal densities favour node pruning; giving each
scheme its own density is the way to say so. No scheme that removes units is tried on
the last layer, whose outputs leave the network. The choice, the settling of
cross-layer effects and the table are :mod:`hwprune.studies.choice`'s.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from ..checks import check_density
from ..errors import InputError
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


ACCEPTED = ("a density in (0, 1] for every candidate scheme, or one per scheme such as "
            "fine=0.1,simd=0.15,node=0.5")


def scheme_densities(density, candidates: Sequence[Scheme | str] = CANDIDATES) -> dict[Scheme, float]:
    """The density each candidate scheme is assumed to reach: ``density`` is one number
    for every scheme of ``candidates``, or a mapping (or text ``name=d,name=d``) of
    scheme names to densities, which then names the candidates itself."""
    if isinstance(density, str) and "=" not in density:
        try:
            density = check_density(density.strip())
        except InputError:
            raise InputError(f"density {density!r} is neither a fraction in (0, 1] nor "
                             f"name=value pairs; give {ACCEPTED}") from None
    if not isinstance(density, (str, Mapping)):
        d = check_density(density)
        return {scheme(s): d for s in candidates}
    if isinstance(density, str):
        pairs = []
        for item in density.split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise InputError(f"density {item.strip()!r} is not name=value; give {ACCEPTED}")
            pairs.append((name.strip(), value.strip()))
    else:
        pairs = list(density.items())
    out: dict[Scheme, float] = {}
    for name, value in pairs:
        s = scheme(name)
        if not s.prunes:
            raise InputError(f"scheme {s.name!r} prunes nothing; give {ACCEPTED}")
        if s in out:
            raise InputError(f"scheme {s.name!r} is given twice; give {ACCEPTED}")
        out[s] = check_density(value, f"density of {s.name}")
    if not out:
        raise InputError(f"no density given; give {ACCEPTED}")
    return out


def describe(densities: Mapping[Scheme, float]) -> str:
    """``densities`` in words, for the line under the table."""
    values = set(densities.values())
    if len(values) == 1:
        return (f"assuming each of {', '.join(s.name for s in densities)} reaches density "
                f"{values.pop():g}")
    return "assuming " + ", ".join(f"{s.name} reaches {d:g}" for s, d in densities.items())


def recommend_choice(net: Network, dev: DeviceProfile, density,
                     candidates: Sequence[Scheme | str] = CANDIDATES) -> Choice:
    """The per-layer choice if each candidate reached its density on every layer
    (``density``: see :func:`scheme_densities`)."""
    densities = scheme_densities(density, candidates)
    last = net.weighted_layers[-1].name
    per_layer = {}
    for lay in net.weighted_layers:
        shape = KernelShape.of(lay)
        per_layer[lay.name] = [Option(s, d) for s, d in densities.items()
                               if fits(s, shape, dev.compute.simd_lanes, lay.name == last)]
    return choose(net, dev, per_layer)


def recommend(net: Network, dev: DeviceProfile, density,
              candidates: Sequence[Scheme | str] = CANDIDATES) -> pd.DataFrame:
    """:meth:`Choice.table` of :func:`recommend_choice` (columns documented there)."""
    return recommend_choice(net, dev, density, candidates).table()
