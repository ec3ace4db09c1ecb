"""Access counts of a mapping, and the search for the cheapest legal mapping.

A *mapping* of a loop nest (:mod:`hwprune.cost.loopnest`) onto a device says, for
every storage level ``l`` (innermost ``0`` to outermost ``K-1``, NoC excluded), the tile
``T[l]`` of each dimension that one instance of the level holds, the spatial unrolling
``P`` across the device's units (applied above the per-unit level ``sp``), and the loop
order at each level, named by the operand that stays stationary (0 outputs,
1 weights, 2 inputs; :data:`hwprune.cost.dataflow.STATIONARY`).

Counting rules (Chen et al., ISCA 2016 convention; "access" = one element moved
between a level and the level below it):

* Every executed MAC reads its weight and input from level 0 (unless they bypass it)
  and updates a partial sum there.
* A tile of operand X in the next level below that holds X is (re)loaded once per
  iteration of the loops above it, except for the innermost run of loops irrelevant to
  X (X stays put while they run). A load reads the tile's footprint from the holding
  level. Across the spatial boundary, a NoC multicasts: the shared level is read once
  for the union of the units' tiles, the NoC carries every unit's copy.
* Fills: with the profile's ``fills = "charged"`` (the default), every element of a
  weight or input tile loaded into a level is also written there (into a per-unit
  level: every unit's copy), and every partial sum leaving a level that holds outputs
  was written there once without a read and is read out (the drain: V(next) more
  reads and writes at that level); with ``"free"`` only the read at the level it
  leaves is charged (Chen et al.'s convention, below).
* Bypass: an operand the innermost level does not hold (weights or inputs) is read
  from the next level holding it once per MAC that needs a new one
  (:func:`_bypass_reuse`), multicast across the array as a one-element tile.
* Partial sums: with V(l) the number of psum tiles' elements written up into level l,
  an inner level costs V(l) - V(next) reads and as many writes, the NoC carries
  V(noc) - V(next) psums, and the outermost level takes V(top) writes and
  V(top) - |outputs| read-backs. For a value reused a, b, c, d times at DRAM, buffer,
  array and RF this is exactly Chen et al.'s a·DRAM + ab·buffer + abc·array +
  abcd·RF (and (2a-1)·DRAM + 2a(b-1)·buffer + ab(c-1)·array + 2abc(d-1)·RF for
  partial sums).
* Partial factors: every tile divides the tile above it, in a loop nest whose bounds
  ``D`` may be padded past the layer's ``Dr`` (a spatial factor that does not divide
  its dimension: ``D = ceil(Dr / P) x P``; or a padding that gives a dimension tile
  sizes it lacks: :func:`hwprune.cost.search.temporal_pads`). The padded nest's loops run whole; the
  padding's share is then taken out of every count: an operand's tile loads and
  transfers are scaled by its real footprint over its padded one
  (``footprint(Dr) / footprint(D)``), and the MACs are the real ones. So the last
  fold of a partial spatial factor runs on fewer PEs (the rest idle) and the last
  iteration of the loop above it is partial. *Simplification:* the padding is spread
  evenly over the loads (a real last fold moves exactly its own data; the two agree
  in total, not per loop).
* Input footprints include the convolution halo, ``(e-1)·stride + r`` rows, capped at
  the unpadded input size; with a stride longer than the kernel (a 1x1 convolution at
  stride 2) only the ``e·r`` rows the windows touch.

Granularity-aware reuse: with weights pruned in groups of ``g`` consecutive weights of
a filter's ``C x R x S`` (1: fine-grained; a kernel row, ``g = S``: vector; a kernel,
``g = R x S``), each group kept with probability ``d``, an innermost tile holding
``n = M_t x max(1, C_t R_t S_t / g)`` groups has no weight left with probability
``(1 - d)^n``. A device that skips pruned weights (compressed storage, or
``zero_weights = "skip"``) then loads no inputs into that tile and sends no partial
sums up from it: the input fills of level 0 and its partial-sum traffic upward are
scaled by ``1 - (1 - d)^n``. A row-stationary PE whose filter row was pruned whole
fetches no input row (Mao et al. 2017's reason for vector pruning's fewer memory
references). Groups are assumed aligned with the tile and kept independently (a
stated simplification: real masks cluster).

Capacities: every tile held by a level that is not a backing memory must fit its
(per-instance) size, or its partition when the level splits its capacity by operand.
Backing memories (dram, sram, flash) are assumed to hold whole tensors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

W_OP, I_OP, O_OP = 0, 1, 2
# dims: N M C E F R S
RELEVANT = np.array(
    [[0, 1, 1, 0, 0, 1, 1],   # weights
     [1, 0, 1, 1, 1, 1, 1],   # inputs (E, R and F, S through the sliding window)
     [1, 1, 0, 1, 1, 0, 0]],  # outputs
    dtype=np.bool_,
)
# Loop orders, innermost first, one per stationary operand. Each dimension is
# irrelevant to exactly one operand (N E F to weights, M to inputs, C R S to outputs),
# and every count of :func:`evaluate` depends on a level's order only through the
# innermost run of loops irrelevant to each operand; so any order of a level's loops
# is matched or beaten, for every operand at once, by the one of these three whose
# first block holds the dimension of its innermost iterating loop
# (``tests/test_memory_semantics.py`` checks it against every permutation). The order
# within a block matters only to which loop slides an input window (:func:`_slide`).
ORDERS = np.array(
    [[6, 5, 2, 4, 3, 0, 1],   # outputs stay: S R C | F E N | M
     [4, 3, 0, 6, 5, 2, 1],   # weights stay: F E N | S R C | M
     [1, 6, 5, 2, 4, 3, 0]],  # inputs stay:  M | S R C F E N
    dtype=np.int64,
)
EPS = 1e-9


@njit(cache=True, nogil=True)
def _multiple(a, b):
    """True when ``a`` is a whole multiple (>= 1) of ``b``."""
    q = a / b
    return q >= 1.0 - EPS and abs(q - np.round(q)) < 1e-9


@njit(cache=True, nogil=True)
def _footprint(op, t, sh, sw, in_h, in_w):
    """Elements of operand ``op`` in a tile ``t`` (7 dims)."""
    if op == 0:
        return t[1] * t[2] * t[5] * t[6]
    if op == 2:
        return t[0] * t[1] * t[3] * t[4]
    # e windows of r rows, s apart: contiguous when r >= s, else only their rows
    h = min((t[3] - 1.0) * sh + t[5], t[3] * t[5])
    w = min((t[4] - 1.0) * sw + t[6], t[4] * t[6])
    if h > in_h:
        h = in_h
    if w > in_w:
        w = in_w
    return t[0] * t[2] * h * w


@njit(cache=True, nogil=True)
def _first_moving_loop(op, lo, hi, trips, order):
    """Walk the loops over levels lo+1..hi from the innermost (``trips[l, d]``: trip
    count of dimension ``d``'s loop at level ``l``): ``(d, c, s)`` for the first loop
    relevant to ``op`` that iterates (dimension, trip count), after a run of irrelevant
    loops whose trip counts multiply to ``s``; ``d = -1`` when none moves."""
    s = 1.0
    for lv in range(lo + 1, hi + 1):
        o = order[lv]
        for j in range(7):
            d = ORDERS[o, j]
            c = trips[lv, d]
            if c <= 1.0 + EPS:
                continue
            if RELEVANT[op, d]:
                return d, c, s
            s *= c
    return -1, 1.0, s


@njit(cache=True, nogil=True)
def _stationary(op, lo, hi, trips, order):
    """Product of the innermost run of loops irrelevant to ``op`` over levels lo+1..hi."""
    return _first_moving_loop(op, lo, hi, trips, order)[2]


@njit(cache=True, nogil=True)
def _bypass_reuse(op, hi, T, trips, order):
    """MACs served per read of operand ``op`` when level 0 does not hold it: the product
    of level 0's loops irrelevant to ``op`` (*simplification*: level 0's loop order is
    taken as the best one for the bypassing operand, those loops innermost) and, when
    none of level 0's loops moves ``op``, the innermost run of irrelevant loops above
    it, over levels 1..hi."""
    s = 1.0
    moving = False
    for d in range(7):
        if T[0, d] > 1.0 + EPS:
            if RELEVANT[op, d]:
                moving = True
            else:
                s *= T[0, d]
    if moving:
        return s
    return s * _stationary(op, 0, hi, trips, order)


@njit(cache=True, nogil=True)
def _slide(hi, T, trips, order, D, sh, sw):
    """Share of an innermost input tile's footprint that a load brings in, on average,
    when the loop that moves it is a sliding window: the innermost loop relevant to
    inputs over levels 1..hi steps along output columns ``F`` (rows ``E``) with the
    whole filter width ``S`` (height ``R``) in the tile, so consecutive windows share
    ``S - stride`` columns and only ``F_t x stride`` new ones enter, after the first of
    the loop's ``n`` steps. 1 when no such loop moves the tile."""
    d, c, _ = _first_moving_loop(1, 0, hi, trips, order)
    if d == 4 and T[0, 6] >= D[6] * (1.0 - EPS):
        t, k, st = T[0, 4], T[0, 6], sw
    elif d == 3 and T[0, 5] >= D[5] * (1.0 - EPS):
        t, k, st = T[0, 3], T[0, 5], sh
    else:
        return 1.0
    new = t * st / ((t - 1.0) * st + k)
    if new >= 1.0:
        return 1.0
    return (1.0 + (c - 1.0) * new) / c


@njit(cache=True, nogil=True)
def evaluate(T, P, order, D, sh, sw, in_h, in_w, sp, has_noc,
             holds, group_of, group_cap, backing, rd, wr, noc_pj, mac_pj,
             elem_bytes, f_exec, w_ratio, w_idx_per_mac, i_top_ratio, g_weights, g_keep, fills,
             o_top_ratio, loops_ok, slide, Dr, acc):
    """Energy (pJ) of one mapping; ``acc`` receives element accesses.

    ``D`` are the (possibly padded) bounds the tiles nest in, ``Dr`` the layer's own
    (see *Partial factors* in the module docstring).

    ``fills``: 1.0 to charge every tile loaded into a level as writes there, 0.0 not to.
    ``o_top_ratio``: bytes per dense byte of the finished outputs as the outermost
    level stores them (run-length coded at the next layer's input density).
    ``loops_ok[l, d]``: whether level ``l``'s tile may exceed the one below it (level
    0: 1) in dimension ``d`` (the profile's ``[mapping.levels]``). ``slide``: whether
    the innermost level keeps the overlap of consecutive input windows (:func:`_slide`).
    ``g_weights``/``g_keep``: weights per pruning group and the kept fraction of groups
    (``g_keep = 1``: empty tiles are not skipped); see *Granularity-aware reuse* in the
    module docstring.

    ``acc[l, op, 0/1]`` are reads/writes at storage level ``l`` and ``acc[K, op, 0]``
    the NoC transfers. Returns ``inf`` for an illegal mapping (tiles that do not nest
    or do not fit).
    """
    K = T.shape[0]
    Tagg = T.copy()
    if sp >= 0:
        for d in range(7):
            Tagg[sp, d] = T[sp, d] * P[d]
    # Tiles must nest exactly.
    for lv in range(1, K):
        for d in range(7):
            if not _multiple(T[lv, d], Tagg[lv - 1, d]):
                return np.inf
    for d in range(7):
        if Tagg[K - 1, d] > D[d] * (1.0 + EPS):
            return np.inf
    # Per-level loop constraints.
    for lv in range(K - 1):
        for d in range(7):
            if not loops_ok[lv, d]:
                below = 1.0 if lv == 0 else Tagg[lv - 1, d]
                if T[lv, d] > below * (1.0 + EPS):
                    return np.inf
    # Capacities.
    used = np.zeros(3)
    for lv in range(K):
        if backing[lv]:
            continue
        used[:] = 0.0
        for op in range(3):
            if holds[lv, op]:
                b = elem_bytes[lv, op] * (w_ratio if op == 0 else 1.0)
                used[group_of[lv, op]] += _footprint(op, T[lv], sh, sw, in_h, in_w) * b
        for g in range(3):
            if used[g] > group_cap[lv, g] * (1.0 + EPS):
                return np.inf

    trips = np.ones((K, 7))
    tiles_of = np.ones(K)      # tiles of each level's size in the whole nest
    for lv in range(K):
        for d in range(7):
            tiles_of[lv] *= D[d] / T[lv, d]
            if lv > 0:
                trips[lv, d] = T[lv, d] / Tagg[lv - 1, d]

    acc[:, :, :] = 0.0
    macs = 1.0
    for d in range(7):
        macs *= Dr[d]
    executed = macs * f_exec
    n_out = Dr[0] * Dr[1] * Dr[3] * Dr[4]
    real = np.empty(3)     # each operand's real share of its padded footprint
    for op in range(3):
        real[op] = (_footprint(op, Dr, sh, sw, in_h, in_w)
                    / _footprint(op, D, sh, sw, in_h, in_w))
    p_prod = 1.0
    iterations = 1.0       # MACs of the padded nest
    for d in range(7):
        p_prod *= P[d]
        iterations *= D[d]
    agg = np.empty(7)

    keep0 = _tile_keep(T, g_weights, g_keep)
    if holds[0, 0]:
        acc[0, 0, 0] = executed * (1.0 + w_idx_per_mac)
    if holds[0, 1]:
        acc[0, 1, 0] = executed
    top_in = 0
    for lv in range(K):
        if holds[lv, 1]:
            top_in = lv
    v_prev = executed   # psum elements written into the current output holder
    for op in range(3):
        prev = 0
        for lv in range(1, K):
            if not holds[lv, op]:
                continue
            bypass = prev == 0 and not holds[0, op]
            if bypass:
                # No copy in level 0: one element per MAC that needs a new one, read
                # from this level (level 0's own loops irrelevant to it run innermost).
                deliveries = iterations / _bypass_reuse(op, lv, T, trips, order)
                fp = 1.0
            else:
                deliveries = tiles_of[prev] / _stationary(op, prev, lv, trips, order)
                fp = _footprint(op, T[prev], sh, sw, in_h, in_w)
            noc = 0.0
            if has_noc and sp >= 0 and prev <= sp < lv:
                for d in range(7):
                    agg[d] = (1.0 if bypass else T[prev, d]) * P[d]
                up = deliveries / p_prod * _footprint(op, agg, sh, sw, in_h, in_w)
                noc = deliveries * fp
            else:
                up = deliveries * fp
            up *= real[op]
            noc *= real[op]
            if prev == 0 and op != 0:
                up *= keep0                 # a tile without weights loads no inputs,
                noc *= keep0                # and leaves no partial sums
            if prev == 0 and op == 1 and slide and not bypass:
                f = _slide(lv, T, trips, order, D, sh, sw)
                up *= f
                noc *= f
            if op == 2:
                leaving = noc if noc > 0.0 else up
                _accumulate(acc, prev, v_prev, leaving)      # in the holder below
                if noc > 0.0:
                    _accumulate(acc, K, noc, up)             # across the array
                # the drain: with fills charged, each value leaving the holder below
                # was written there once without a read, and is read out
                acc[prev, 2, 0] += fills * leaving
                acc[prev, 2, 1] += fills * leaving
                v_prev = up
            else:
                scale = w_ratio if op == 0 else 1.0
                acc[lv, op, 0] += up * (i_top_ratio if op == 1 and lv == top_in else scale)
                acc[K, op, 0] += noc * scale
                # the fill: every copy written into the receiving level
                if not bypass:
                    acc[prev, op, 1] += fills * (noc if noc > 0.0 else up) * scale
            prev = lv
        if op == 2:
            # The outermost holder of outputs: every visit is a write, all but the
            # first one per output value a read-back.
            acc[prev, 2, 1] += v_prev - n_out * (1.0 - o_top_ratio)
            rb = v_prev - n_out
            acc[prev, 2, 0] += rb if rb > 0.0 else 0.0

    energy = executed * mac_pj
    for lv in range(K):
        for op in range(3):
            energy += acc[lv, op, 0] * rd[lv, op] + acc[lv, op, 1] * wr[lv, op]
    for op in range(3):
        energy += acc[K, op, 0] * noc_pj[op]
    return energy


@njit(cache=True, nogil=True)
def _cost(T, P, order, ctx, acc):
    """:func:`evaluate` with the layer and device constants packed in ``ctx``."""
    (D, sh, sw, in_h, in_w, sp, has_noc, holds, group_of, group_cap, backing, rd, wr,
     noc_pj, mac_pj, elem_bytes, f_exec, w_ratio, w_idx_per_mac, i_top_ratio, g_weights,
     g_keep, fills, o_top_ratio, loops_ok, slide, Dr) = ctx
    return evaluate(T, P, order, D, sh, sw, in_h, in_w, sp, has_noc, holds, group_of,
                    group_cap, backing, rd, wr, noc_pj, mac_pj, elem_bytes, f_exec,
                    w_ratio, w_idx_per_mac, i_top_ratio, g_weights, g_keep, fills, o_top_ratio,
                    loops_ok, slide, Dr, acc)


@njit(cache=True, nogil=True)
def _tile_keep(T, g_weights, g_keep):
    """Probability that the innermost tile's weights (``M x C x R x S`` of ``T[0]``) are
    not all pruned, when groups of ``g_weights`` consecutive weights of a filter's
    ``C x R x S`` are kept independently with probability ``g_keep``."""
    if g_keep >= 1.0:
        return 1.0
    red = T[0, 2] * T[0, 5] * T[0, 6]
    per_filter = red / g_weights
    if per_filter < 1.0:
        per_filter = 1.0
    return 1.0 - (1.0 - g_keep) ** (T[0, 1] * per_filter)


@njit(cache=True, nogil=True)
def _accumulate(acc, lv, here, up):
    """Partial sums accumulated at ``lv`` between arriving (``here``) and leaving
    (``up``): ``here - up`` reads and writes at a storage level, or transfers at the
    NoC (``lv == K``)."""
    K = acc.shape[0] - 1
    n = here - up
    if n < 0.0:
        n = 0.0
    acc[lv, 2, 0] += n
    if lv < K:
        acc[lv, 2, 1] += n


@njit(cache=True, nogil=True)
def _cascade_up(T, P, sp, lv, d, K, D):
    """After T[lv, d] grew: make every level above a multiple of the one below it,
    using the smallest multiple that divides the dimension. False if impossible."""
    for l2 in range(lv + 1, K):
        need = T[l2 - 1, d] * (P[d] if l2 - 1 == sp else 1.0)
        if _multiple(T[l2, d], need):
            return True
        if l2 == K - 1:
            return False
        c = need * np.ceil(T[l2, d] / need - EPS)
        while c <= D[d] * (1.0 + EPS) and not _multiple(D[d], c):
            c += need
        if c > D[d] * (1.0 + EPS):
            return False
        T[l2, d] = c
    return True


@njit(cache=True, nogil=True)
def _cascade_down(T, P, sp, lv, d, minT0):
    """After T[lv, d] shrank: make every level below divide the one above it, keeping
    the largest such tile. False if impossible."""
    for l2 in range(lv - 1, -1, -1):
        p = P[d] if l2 == sp else 1.0
        if not _multiple(T[l2 + 1, d], p):
            return False
        limit = np.round(T[l2 + 1, d] / p)
        if _multiple(limit, T[l2, d]):
            return True
        c = np.floor(T[l2, d] + EPS)
        while c > 1.0 and not _multiple(limit, c):
            c -= 1.0
        T[l2, d] = c
    return T[0, d] >= minT0[d] * (1.0 - EPS)


@njit(cache=True, nogil=True)
def _step(T, P, sp, lv, d, direction, cand, ncand, minT0, D, K):
    """Move T[lv, d] to the next candidate up (+1) or down (-1), then repair the levels
    above or below so that tiles still nest. False when no legal move exists."""
    cur = T[lv, d]
    new = -1.0
    if direction > 0:
        for j in range(ncand[d]):
            if cand[d, j] > cur * (1.0 + EPS):
                new = cand[d, j]
                break
        if new < 0.0:
            return False
        T[lv, d] = new
        if lv > 0 and not _multiple(new, T[lv - 1, d] * (P[d] if lv - 1 == sp else 1.0)):
            return False
        return _cascade_up(T, P, sp, lv, d, K, D)
    for j in range(ncand[d] - 1, -1, -1):
        if cand[d, j] < cur * (1.0 - EPS):
            new = cand[d, j]
            break
    if new < 0.0 or (lv == 0 and new < minT0[d] * (1.0 - EPS)):
        return False
    T[lv, d] = new
    if not _multiple(T[lv + 1, d], new * (P[d] if lv == sp else 1.0)):
        return False
    return _cascade_down(T, P, sp, lv, d, minT0)


@njit(cache=True, nogil=True)
def search(T0, P, order0, allowed, cand, ncand, minT0, ctx, max_iter):
    """Hill-climb from ``T0``/``order0``, taking the best improving neighbour until
    none improves. The neighbours are, first, single-dimension steps (with the tiles
    above and below following) and changes of a level's order to another that
    ``allowed[level, order]`` permits (a preset's stationary operand fixes level 1's
    order); when none of those improves, paired
    grow-one/shrink-another steps at one level.

    ``ctx`` is the tuple of :func:`evaluate`'s arguments after ``order`` and before
    ``acc``. Returns ``(energy, T, order)``; energy is ``inf`` if ``T0`` is illegal.
    """
    D = ctx[0]
    sp = ctx[5]
    K = T0.shape[0]
    acc = np.zeros((K + 1, 3, 2))
    T = T0.copy()
    order = order0.copy()
    best = _cost(T, P, order, ctx, acc)
    if not np.isfinite(best):
        return best, T, order
    for _ in range(max_iter):
        cand_best = best
        best_T = T.copy()
        best_order = order.copy()
        for lv in range(K - 1):
            for d in range(7):
                for direction in (1, -1):
                    trial = T.copy()
                    if not _step(trial, P, sp, lv, d, direction, cand, ncand, minT0, D, K):
                        continue
                    e = _cost(trial, P, order, ctx, acc)
                    if e < cand_best * (1.0 - 1e-12):
                        cand_best = e
                        best_T = trial
        for lv in range(K):
            for o in range(ORDERS.shape[0]):
                if o == order[lv] or not allowed[lv, o]:
                    continue
                trial_order = order.copy()
                trial_order[lv] = o
                e = _cost(T, P, trial_order, ctx, acc)
                if e < cand_best * (1.0 - 1e-12):
                    cand_best = e
                    best_T = T.copy()
                    best_order = trial_order
        if cand_best >= best:
            # Grow one dimension, shrink another at the same level.
            for lv in range(K - 1):
                for d in range(7):
                    grown = T.copy()
                    if not _step(grown, P, sp, lv, d, 1, cand, ncand, minT0, D, K):
                        continue
                    for d2 in range(7):
                        if d2 == d:
                            continue
                        trial2 = grown.copy()
                        if not _step(trial2, P, sp, lv, d2, -1, cand, ncand, minT0, D, K):
                            continue
                        e = _cost(trial2, P, order, ctx, acc)
                        if e < cand_best * (1.0 - 1e-12):
                            cand_best = e
                            best_T = trial2
        if cand_best >= best:
            break
        best = cand_best
        T = best_T
        order = best_order
    return best, T, order


@njit(cache=True, nogil=True)
def _jump(T, P, sp, lv, d, direction, cand, ncand, minT0, D, K):
    """Step T[lv, d] as far as it goes in ``direction``; False if it cannot move."""
    moved = False
    while True:
        trial = T.copy()
        if not _step(trial, P, sp, lv, d, direction, cand, ncand, minT0, D, K):
            return moved
        T[:, :] = trial
        moved = True


@njit(cache=True, nogil=True)
def refine(T, P, order, allowed, cand, ncand, minT0, ctx, max_iter):
    """Iterated local search around a hill-climbed mapping: kick one tile to its
    smallest or largest legal size, or one searched level's order to another, climb
    again, keep the result if it is cheaper; repeat until no kick helps. Returns
    ``(energy, T, order)``."""
    D = ctx[0]
    sp = ctx[5]
    K = T.shape[0]
    acc = np.zeros((K + 1, 3, 2))
    best = _cost(T, P, order, ctx, acc)
    best_T = T.copy()
    best_order = order.copy()
    improved = True
    while improved:
        improved = False
        for lv in range(K - 1):
            for d in range(7):
                for direction in (1, -1):
                    kicked = best_T.copy()
                    if not _jump(kicked, P, sp, lv, d, direction, cand, ncand, minT0, D, K):
                        continue
                    e, t2, o2 = search(kicked, P, best_order, allowed, cand, ncand, minT0,
                                       ctx, max_iter)
                    if e < best * (1.0 - 1e-9):
                        best, best_T, best_order, improved = e, t2, o2, True
        for lv in range(K):
            for o in range(ORDERS.shape[0]):
                if o == best_order[lv] or not allowed[lv, o]:
                    continue
                kicked_order = best_order.copy()
                kicked_order[lv] = o
                e, t2, o2 = search(best_T, P, kicked_order, allowed, cand, ncand, minT0,
                                   ctx, max_iter)
                if e < best * (1.0 - 1e-9):
                    best, best_T, best_order, improved = e, t2, o2, True
    return best, best_T, best_order
