"""The density each granularity reaches at equal accuracy, from published pruning results.

``hwprune granularity NETWORK --density d`` has no trained weights to prune, so it
cannot measure how far each scheme goes before accuracy drops. Coarser groups go less
far (Mao et al. 2017), and assuming every scheme reaches the same density ``d`` makes
node pruning (a dense layer ``1/d`` smaller) win almost everywhere. This model takes
``d`` as the density **fine-grained** pruning reaches and gives, per scheme and layer,
the density the scheme reaches at the same accuracy (:func:`model_density`). Every
constant is computed here from :mod:`hwprune.studies.published`; none is fitted to a
latency result.

**Groups of weights** (``simd``, ``vector``, ``kernel``, fixed-width groups): density
``min(1, d * ratio(g))``, ``g`` the scheme's group width on the layer
(:meth:`~hwprune.schemes.Scheme.group_width`: the device's SIMD lanes for ``simd``).
``ratio`` is anchored on Mao et al.'s table at a given accuracy point (five ImageNet
networks; :data:`~hwprune.studies.published.MAO_EQUAL_ACCURACY`):

* per network, ``vector / fine`` and ``kernel / fine`` (density ratios at the same
  top-5 accuracy); the statistic is the **median over the five networks**
  (:func:`mao_ratios` gives the spread: vector 1.078-1.353, median 1.142; kernel
  1.335-1.710, median 1.644);
* a vector (1-D) group is a kernel row of ``S`` weights and a kernel (2-D) group
  ``R x S``; most weights of the five networks sit in 3x3 kernels, so the anchors are
  ``g = 3`` (vector) and ``g = 9`` (kernel). *Simplification:* AlexNet's 11x11 and 5x5
  kernels and the 1x1 convolutions of GoogLeNet/ResNet/DenseNet make the real widths
  vary;
* ``ratio(g)`` is piecewise linear in ``log g`` through ``(1, 1)``, ``(3, vector)`` and
  ``(9, kernel)``, and beyond ``g = 9`` continues with the last segment's slope (an
  extrapolation: no published table has wider groups at equal accuracy). So
  ``ratio(2) = 1.09`` (Cortex-M4's two 16-bit lanes), ``ratio(8) = 1.59`` (AVX's eight
  floats), ``ratio(32) = 2.22`` (a warp);
* SIMD groups run along a weight row like Mao's vectors; Scalpel's paper gives no
  per-layer SIMD-aware densities next to Han's at equal accuracy, so the SIMD ratio is
  Mao's, by group width. Scalpel's release does report whole-network densities of
  SIMD-aware pruning with ``g = 8`` on the LeNets (0.080 and 0.032, against Han's 0.082
  and 0.084 fine-grained: :data:`~hwprune.studies.published.SCALPEL_SIMD`): on MNIST
  its groups lost nothing against Han's single weights, so the model (1.59x) is
  conservative there. These are shown, not used.

**Whole units** (``node``, ``filter``): density (kept fraction of output units)
``d ** beta[kind]``, ``kind`` = ``conv`` or ``fc``. For each layer that both Han et al.
2015 (fine, per layer: :data:`~hwprune.studies.published.HAN_FINE`) and Scalpel's
released node-pruned structures (:data:`~hwprune.studies.published.SCALPEL_NODE`)
prune, both at no accuracy loss, ``beta = ln(units kept) / ln(fine density)``; the
statistic is the **median per kind** (:func:`node_exponents`: conv over 7 layers of
LeNet-5 and AlexNet, median 0.48, spread 0.01-1.92; fc over 5 layers of the LeNets and
AlexNet, median 0.19, spread 0.13-0.81). So at ``d = 0.1`` node pruning keeps 33% of
a convolution's filters and 65% of an fc layer's neurons; at ``d = 1`` every scheme
keeps everything. *Simplifications:* the exponent does not depend on the network or
the layer's width; ``filter`` pruning (the next layer's weights kept while training)
uses node pruning's exponent; the per-layer spread is wide (the median hides it, the
docs show it).

**N:M patterns** keep ``N / M`` where fine-grained pruning reaches ``N / M`` or less at
the accuracy in question, and are out (density 1: nothing pruned) above it. Mishra et al.
(arXiv:2104.08378, 2021) retrain 2:4 to the dense accuracy on some thirty vision and
language networks, so an N:M pattern is taken to cost no more accuracy than fine-grained
pruning to the same density. *Simplification:* 1:4 and 4:8 are held to the same rule
(fewer published results).

**Blocks** ``R x C`` are groups of ``g = R x C`` weights: ``min(1, d * ratio(R C))``,
Mao's ratio extrapolated by group size (*simplification*: a 2-D block and a 1-D group of
the same size are taken to cost the same accuracy; no published table compares them at
equal accuracy). **Rounded node pruning** (``node-roundK``) reaches node pruning's density;
the rounding then keeps a few more units (:meth:`~hwprune.schemes.Scheme.kept_units`).

A scheme that prunes nothing has density 1. The density never rises as ``d`` falls.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from ..checks import check_density
from ..latency.work import KernelShape
from ..schemes import Group, Scheme, scheme
from . import published

VECTOR_WIDTH = 3
"""Weights per Mao et al. vector group assumed for the anchor (a 3x3 kernel's row)."""
KERNEL_WIDTH = 9
"""Weights per Mao et al. kernel group assumed for the anchor (a 3x3 kernel)."""

NAME = "hwprune's equal-accuracy density model"


@dataclass(frozen=True)
class Spread:
    """A statistic over published points: ``median``, ``low``, ``high``, ``n`` and the
    ``points`` (label, value) it came from."""

    median: float
    low: float
    high: float
    points: tuple[tuple[str, float], ...]

    @property
    def n(self) -> int:
        return len(self.points)

    @staticmethod
    def of(points: Sequence[tuple[str, float]]) -> "Spread":
        values = [v for _, v in points]
        return Spread(statistics.median(values), min(values), max(values), tuple(points))


@lru_cache(maxsize=None)
def mao_ratios() -> dict[str, Spread]:
    """``vector`` and ``kernel``: density / fine-grained density at equal accuracy, per
    network of Mao et al.'s table, with the median over the networks."""
    rows = published.MAO_EQUAL_ACCURACY
    return {"vector": Spread.of([(r.network, r.vector / r.fine) for r in rows]),
            "kernel": Spread.of([(r.network, r.kernel / r.fine) for r in rows])}


def group_ratio(g: int) -> float:
    """Density of pruning in groups of ``g`` consecutive weights over fine-grained
    density at equal accuracy (module docstring): 1 at ``g = 1``, Mao's median vector
    ratio at ``g = 3``, the median kernel ratio at ``g = 9``, linear in ``log g``."""
    g = max(1, int(g))
    r = mao_ratios()
    vector, kernel = r["vector"].median, r["kernel"].median
    x = math.log(g)
    xv, xk = math.log(VECTOR_WIDTH), math.log(KERNEL_WIDTH)
    if g <= VECTOR_WIDTH:
        return 1.0 + (vector - 1.0) * x / xv
    slope = (kernel - vector) / (xk - xv)
    return vector + slope * (x - xv)


@lru_cache(maxsize=None)
def node_exponents() -> dict[str, Spread]:
    """``conv`` and ``fc``: per layer pruned both by Han et al. (fine) and by Scalpel
    (node), ``ln(units kept) / ln(fine density)``, with the median per kind."""
    points: dict[str, list[tuple[str, float]]] = {"conv": [], "fc": []}
    for net, han in published.HAN_FINE.items():
        kept = published.node_kept(net) if net in published.SCALPEL_NODE else {}
        for layer, d in han.items():
            if layer in kept and d < 1:
                kind = published.SCALPEL_NODE_KIND[net][layer]
                points[kind].append((f"{net}/{layer}", math.log(kept[layer]) / math.log(d)))
    return {kind: Spread.of(p) for kind, p in points.items()}


def node_density(d: float, is_fc: bool) -> float:
    """Kept fraction of output units node pruning reaches where fine-grained pruning
    reaches ``d`` (module docstring)."""
    beta = node_exponents()["fc" if is_fc else "conv"].median
    return float(d) ** beta


def model_density(s: Scheme | str, shape: KernelShape, simd_lanes: int, d: float) -> float:
    """The density scheme ``s`` reaches on a layer of ``shape`` on a device with
    ``simd_lanes`` where fine-grained pruning reaches ``d``, at equal accuracy."""
    d = check_density(d)
    s = scheme(s).on(shape.is_fc)
    if not s.prunes:
        return 1.0
    if s.fixed_density is not None:
        return s.fixed_density if d <= s.fixed_density else 1.0
    if s.group is Group.ROW:
        return node_density(d, shape.is_fc)
    g = s.block[0] * s.block[1] if s.group is Group.BLOCK else s.group_width(shape.kernel, simd_lanes)
    return min(1.0, d * group_ratio(g))


def summary() -> str:
    """The model in one line, for the line under ``granularity``'s table."""
    r, b = mao_ratios(), node_exponents()
    return (f"groups of g weights reach d x {r['vector'].median:.2f} at g=3 up to "
            f"d x {r['kernel'].median:.2f} at g=9 (Mao et al. 2017, median of 5 networks; "
            f"simd: g = SIMD lanes), node keeps d^{b['conv'].median:.2f} of a conv layer's "
            f"and d^{b['fc'].median:.2f} of an fc layer's units (Scalpel's node-pruned "
            "structures against Han et al. 2015, median per kind)")
