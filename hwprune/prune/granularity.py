"""Mask groups: which weights of a layer are kept or removed together.

A scheme (:mod:`hwprune.schemes`) says what one group is (:class:`~hwprune.schemes.Group`);
this module splits a layer's weight tensor into those groups, and a mask keeps or
removes whole groups. For a convolution ``W[o, c, kh, kw]``, by scheme:

============ =========================================== ==============================
name         one group is                                source
============ =========================================== ==============================
``fine``     one weight                                  Han et al. 2015
``vector``   one kernel row ``W[o, c, i, :]``            Mao et al. 2017 (1-D)
``kernel``   one 2-D kernel ``W[o, c, :, :]``            Mao et al. 2017 (2-D)
``filter``   one filter ``W[o, :, :, :]``                Mao et al. 2017 (3-D)
``simd``     ``g`` consecutive weights of a weight row   Scalpel (Yu et al. 2017)
             (row = im2col row ``c x kh x kw``)
``node``     a filter / neuron and the inputs of the     Scalpel node pruning
             next layer that read it
(fixed)      ``Scheme.width`` consecutive weights of a   a registered scheme with
             weight row                                  ``Group.FIXED``
``N:M``      one weight; the ``N`` best of every         Mishra et al. 2021 (NVIDIA
             aligned window of ``M`` of a weight row     sparse tensor cores)
             are kept (:func:`keep_groups`)
``block-RxC`` an ``R x C`` block of the weight matrix    Gray et al. 2017, Narang et
             (``R`` rows by ``C`` columns of the rows)   al. 2017 (block sparsity)
============ =========================================== ==============================

``dense`` has no groups to remove: its layers keep every weight.

A fully connected layer ``W[o, i]`` is a convolution with a 1x1 kernel: ``vector`` and
``kernel`` groups are single weights there (as ``fine``), ``filter`` and ``node`` are
rows. The last ``simd`` group of a row may be shorter than ``g`` when ``g`` does not
divide the row length; ``g`` larger than the row is an error.

An N:M layer keeps ``N / M`` of every row whatever density is asked for (the windows
fix it; a last, shorter window keeps at most ``N``). Blocks at the bottom or right edge
of a weight matrix that ``R`` or ``C`` does not divide are smaller. ``node-roundK``
keeps a multiple of ``K`` units (:meth:`~hwprune.schemes.Scheme.kept_units`).

``filter`` and ``node`` remove output units; on the model's last layer (the class
logits) that would remove classes, so these two granularities leave the last layer
dense (:func:`output_kept`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import check_density, check_group_width
from ..errors import InputError
from ..schemes import Group, Scheme, names, scheme
from ..sparse.nm import nm_mask


def granularities() -> tuple[str, ...]:
    """Names of the registered schemes that prune (the ``--granularity`` choices)."""
    return names(pruning_only=True)


@dataclass(frozen=True)
class Groups:
    """``ids``: the group of each weight (int64, the weight's shape); ``count`` groups;
    ``sizes``: weights per group; ``row_of``: the output row each group lies in."""

    ids: np.ndarray
    count: int
    sizes: np.ndarray
    row_of: np.ndarray


def check(granularity: str | Scheme, group: int | None) -> Scheme:
    """The scheme called ``granularity``; :class:`InputError` for an unknown name, a
    missing SIMD group width or a width given to a scheme that takes none."""
    s = scheme(granularity)
    if s.group is Group.SIMD:
        if group is None:
            raise InputError(f"the {s.name} granularity needs a group width g >= 1 (--group)")
        check_group_width(group)
    elif group is not None:
        raise InputError(f"a group width applies to the simd granularity only, not {s.name!r}")
    return s


def groups_of(shape: tuple[int, ...], granularity: str | Scheme, group: int | None = None,
              layer: str = "layer") -> Groups:
    """The groups of a weight of ``shape`` ((out, in) or (out, in, kh, kw))."""
    s = check(granularity, group)
    shape = tuple(shape)
    out = shape[0]
    row = int(np.prod(shape[1:]))
    kh, kw = (shape[2], shape[3]) if len(shape) == 4 else (1, 1)
    width = group if s.group is Group.SIMD else s.width
    if s.group in (Group.WEIGHT, Group.NONE):
        per_row = row
        ids = np.arange(out * row)
    elif s.group is Group.KERNEL_ROW:
        per_row = row // kw
        ids = np.arange(out * per_row).repeat(kw)
    elif s.group is Group.KERNEL:
        per_row = row // (kh * kw)
        ids = np.arange(out * per_row).repeat(kh * kw)
    elif s.group is Group.ROW:
        per_row = 1
        ids = np.arange(out).repeat(row)
    elif s.group is Group.NM:
        per_row = row
        ids = np.arange(out * row)
    elif s.group is Group.BLOCK:
        r, c = s.block
        across = math.ceil(row / c)
        ids = ((np.arange(out) // r)[:, None] * across + np.arange(row)[None, :] // c).ravel()
        count = math.ceil(out / r) * across
        ids = ids.reshape(shape).astype(np.int64)
        return Groups(ids, count, np.bincount(ids.ravel(), minlength=count),
                      np.arange(count) // across * r)
    else:  # SIMD or FIXED: ``width`` consecutive weights of a row
        group = width
        if group > row:
            raise InputError(f"{layer}: {s.name} group width {group} does not fit its weight rows "
                             f"of {row} weights; accepted: 1..{row}")
        per_row = math.ceil(row / group)
        ids = (np.arange(out)[:, None] * per_row + np.arange(row)[None, :] // group).ravel()
    ids = ids.reshape(shape).astype(np.int64)
    count = out * per_row
    return Groups(ids, count, np.bincount(ids.ravel(), minlength=count),
                  np.arange(count) // per_row)


def select(scores: np.ndarray, sizes: np.ndarray, density: float,
           eligible: np.ndarray | None = None) -> np.ndarray:
    """Keep the highest-scoring groups so that the kept weights are as close as
    possible to ``density`` of all weights (within one group); at least one group is
    kept. Ties go to the lower group index. ``eligible`` (bool per group) excludes
    groups that may not come back (already pruned). Returns a bool per group."""
    density = check_density(density)
    total = sizes.sum()
    s = np.where(eligible, scores, -np.inf) if eligible is not None else scores
    order = np.lexsort((np.arange(s.size), -s))
    kept = np.cumsum(sizes[order])
    k = int(np.argmin(np.abs(kept - density * total))) + 1
    if eligible is not None:
        k = min(k, max(int(eligible.sum()), 1))
    keep = np.zeros(scores.size, dtype=bool)
    keep[order[:k]] = True
    return keep


def keep_groups(s: Scheme, groups: Groups, scores: np.ndarray, density: float,
                eligible: np.ndarray | None = None) -> np.ndarray:
    """The groups ``s`` keeps (a bool per group): the ``N`` best-scoring weights of every
    window of an N:M scheme (``density`` fixed by the pattern; ineligible weights never
    come back), else :func:`select` to ``density``, rounded up to a multiple of
    ``round_to`` units for a rounded unit scheme."""
    if s.group is Group.NM:
        rows = int(groups.row_of[-1]) + 1
        ranked = np.where(eligible, scores, -np.inf) if eligible is not None else scores
        return nm_mask(np.asarray(ranked, dtype=float).reshape(rows, -1), *s.nm).ravel()
    keep = select(scores, groups.sizes, density, eligible)
    if s.round_to > 1 and s.group is Group.ROW:
        want = s.kept_units(keep.size, keep.sum() / keep.size)
        if eligible is not None:
            want = min(want, max(int(eligible.sum()), 1))
        if want != keep.sum():
            s_ = np.where(eligible, scores, -np.inf) if eligible is not None else scores
            order = np.lexsort((np.arange(s_.size), -s_))
            keep = np.zeros(keep.size, dtype=bool)
            keep[order[:want]] = True
    return keep


def to_mask(groups: Groups, keep: np.ndarray) -> np.ndarray:
    """The weight mask of a bool per group."""
    return keep[groups.ids]


def alive(groups: Groups, mask: np.ndarray) -> np.ndarray:
    """Bool per group: any of its weights kept by ``mask``."""
    return np.bincount(groups.ids.ravel(), weights=mask.ravel(), minlength=groups.count) > 0
