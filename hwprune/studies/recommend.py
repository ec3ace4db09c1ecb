"""Granularity per layer from the simulators alone, at a density the user expects.

For a network with no trained weights here (a built-in network, an ONNX file, an
imported PyTorch module), how far each scheme can prune within an accuracy tolerance
cannot be measured; :mod:`hwprune.studies.scalpel` does that for the reference models.
This module asks the other half of Scalpel's question: if each scheme reached the
density the user expects of it, which one runs fastest on the device? The densities
(:func:`scheme_densities`) are either one number ``d`` or one per scheme. Coarser
groups reach less sparsity at the same accuracy (Mao et al. 2017), so one density for
every scheme would favour node pruning (a dense layer ``1/d`` smaller); one number is
therefore the density *fine-grained* pruning reaches, and each other candidate of
:data:`CANDIDATES` (SIMD-aware with ``g`` = the device's SIMD width where a group fits a
weight row, and node pruning) gets, layer by layer, the density it reaches at the same
accuracy from :mod:`hwprune.studies.density_model` (:class:`ModelledDensities`). One
density per scheme, ``fine=0.1,simd=0.15,node=0.5``, is taken as given and also names
the candidates. :func:`describe` says which was used (the line under the table). No
scheme that removes units is tried on the last layer, whose outputs leave the network,
and layers that must lose the same units (a residual add's branches, a depthwise
convolution and its producer: :mod:`hwprune.workload.coupling`) take node pruning
together or not at all.
The choice, the settling of cross-layer effects and the table are :mod:`hwprune.studies.choice`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from ..checks import check_density
from ..errors import InputError
from ..evaluate.plan import can_remove_units
from ..hardware.profile import DeviceProfile
from ..latency.network import accelerated_schemes
from ..latency.work import KernelShape
from ..schemes import FINE, NODE, SIMD, Scheme, scheme
from ..workload.coupling import unit_couplings
from ..workload.layer import Layer
from ..workload.network import Network
from . import density_model
from .choice import Choice, Option, choose

CANDIDATES: tuple[Scheme, ...] = (FINE, SIMD, NODE)
"""Schemes weighed by default."""


def fits(s: Scheme, layer: Layer, simd_lanes: int, last: bool) -> bool:
    """Whether ``s`` can prune ``layer``: a group no wider than a weight row, and no
    unit removal on the network's last conv/fc layer or where a plan cannot remove
    units (:func:`~hwprune.evaluate.plan.can_remove_units`)."""
    if s.removes_units and (last or not can_remove_units(layer)):
        return False
    shape = KernelShape.of(layer)
    return s.group_width(shape.kernel, simd_lanes) <= shape.cols


ACCEPTED = ("a density in (0, 1] (fine-grained pruning's; the other schemes' come from the "
            "density model), or one per scheme such as fine=0.1,simd=0.15,node=0.5")


@dataclass(frozen=True)
class ModelledDensities:
    """One density ``fine`` for fine-grained pruning; each scheme of ``candidates``
    reaches, per layer, the density of equal accuracy that
    :func:`hwprune.studies.density_model.model_density` gives."""

    fine: float
    candidates: tuple[Scheme, ...] = CANDIDATES

    def at(self, s: Scheme, shape: KernelShape, simd_lanes: int) -> float:
        """The density ``s`` reaches on a layer of ``shape``."""
        return density_model.model_density(s, shape, simd_lanes, self.fine)

    def describe(self) -> str:
        others = ", ".join(s.name for s in self.candidates if s != FINE) or "no other scheme"
        return (f"assuming fine-grained pruning reaches density {self.fine:g} and {others} "
                f"the density of equal accuracy from {density_model.NAME}: "
                + density_model.summary())


def scheme_densities(density, candidates: Sequence[Scheme | str] = CANDIDATES
                     ) -> dict[Scheme, float] | ModelledDensities:
    """The density each candidate scheme is assumed to reach: ``density`` is one number,
    the density of fine-grained pruning, from which :class:`ModelledDensities` gives
    every scheme of ``candidates`` its density of equal accuracy per layer; or a mapping
    (or text ``name=d,name=d``) of scheme names to densities, taken as given, which then
    names the candidates itself."""
    if isinstance(density, ModelledDensities):
        return density
    if isinstance(density, str) and "=" not in density:
        try:
            density = check_density(density.strip())
        except InputError:
            raise InputError(f"density {density!r} is neither a fraction in (0, 1] nor "
                             f"name=value pairs; give {ACCEPTED}") from None
    if not isinstance(density, (str, Mapping)):
        return ModelledDensities(check_density(density), tuple(scheme(s) for s in candidates))
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
        if s.fixed_density is not None and abs(out[s] - s.fixed_density) > 1e-9:
            raise InputError(f"{s.name} keeps {s.fixed_density:g} of every row, whatever the "
                             f"density; give {s.name}={s.fixed_density:g}, not {value}")
    if not out:
        raise InputError(f"no density given; give {ACCEPTED}")
    return out


def describe(densities: Mapping[Scheme, float] | ModelledDensities) -> str:
    """``densities`` in words, for the line under the table: which densities were given,
    or which model gave them."""
    if isinstance(densities, ModelledDensities):
        return densities.describe()
    values = set(densities.values())
    if len(values) == 1:
        return (f"assuming each of {', '.join(s.name for s in densities)} reaches density "
                f"{values.pop():g}")
    return "assuming " + ", ".join(f"{s.name} reaches {d:g}" for s, d in densities.items())


def recommend_choice(net: Network, dev: DeviceProfile, density,
                     candidates: Sequence[Scheme | str] | None = None) -> Choice:
    """The per-layer choice if each candidate reached its density on every layer
    (``density``: see :func:`scheme_densities`; one number is fine-grained pruning's,
    the others' come from :mod:`hwprune.studies.density_model` layer by layer).
    ``candidates``: default :data:`CANDIDATES` and the schemes the device's hardware is
    built for (:func:`~hwprune.latency.network.accelerated_schemes`)."""
    if candidates is None:
        candidates = CANDIDATES + accelerated_schemes(dev)
    densities = scheme_densities(density, candidates)
    last = net.weighted_layers[-1].name
    lanes = dev.compute.simd_lanes
    per_layer = {}
    for lay in net.weighted_layers:
        shape = KernelShape.of(lay)
        if isinstance(densities, ModelledDensities):
            given = {s: densities.at(s, shape, lanes) for s in densities.candidates}
        else:
            given = densities
        per_layer[lay.name] = [Option(s, d) for s, d in given.items()
                               if fits(s, lay, lanes, lay.name == last)
                               and (s.fixed_density is None or d < 1.0)]
    return choose(net, dev, per_layer, unit_couplings(net))


def recommend(net: Network, dev: DeviceProfile, density,
              candidates: Sequence[Scheme | str] | None = None) -> pd.DataFrame:
    """:meth:`Choice.table` of :func:`recommend_choice` (columns documented there)."""
    return recommend_choice(net, dev, density, candidates).table()
