"""Access counts of a mapping, and the search for the cheapest legal mapping.

A *mapping* of a loop nest (:mod:`hwprune.cost.loopnest`) onto a device says, for
every storage level ``l`` (innermost ``0`` to outermost ``K-1``, NoC excluded), the tile
``T[l]`` of each dimension that one instance of the level holds, the spatial unrolling
``P`` across the device's units (applied above the per-unit level ``sp``), and the loop
order at each level, named by the operand that stays stationary (0 outputs,
1 weights, 2 inputs; :data:`hwprune.cost.dataflow.STATIONARY`).

Counting rules (Chen et al., ISCA 2016 convention; "access" = one element moved
between a level and the level below it):

* Every executed MAC reads its weight and input from level 0 and updates a partial sum
  there.
* A tile of operand X in the next level below that holds X is (re)loaded once per
  iteration of the loops above it, except for the innermost run of loops irrelevant to
  X (X stays put while they run). A load reads the tile's footprint from the holding
  level. Across the spatial boundary, a NoC multicasts: the shared level is read once
  for the union of the units' tiles, the NoC carries every unit's copy.
* Fills: with the profile's ``fills = "charged"`` (the default), every element of a
  weight or input tile loaded into a level is also written there (into a per-unit
  level: every unit's copy); with ``"free"`` only the read at the level it leaves
  is charged (Chen et al.'s convention, below).
* Partial sums: with V(l) the number of psum tiles' elements written up into level l,
  an inner level costs V(l) - V(next) reads and as many writes, the NoC carries
  V(noc) - V(next) psums, and the outermost level takes V(top) writes and
  V(top) - |outputs| read-backs. For a value reused a, b, c, d times at DRAM, buffer,
  array and RF this is exactly Chen et al.'s a·DRAM + ab·buffer + abc·array +
  abcd·RF (and (2a-1)·DRAM + 2a(b-1)·buffer + ab(c-1)·array + 2abc(d-1)·RF for
  partial sums).
* Factorization is exact: every tile divides the tile above it (and the spatial
  factor divides its dimension), so all loop counts are integers.
* Input footprints include the convolution halo, ``(e-1)·stride + r`` rows, capped at
  the unpadded input size.

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
# Loop orders, innermost first, one per stationary operand.
ORDERS = np.array(
    [[6, 5, 2, 4, 3, 0, 1],   # outputs stay: S R C | F E N | M
     [4, 3, 0, 6, 5, 2, 1],   # weights stay: F E N | S R C | M
     [1, 6, 5, 2, 4, 3, 0]],  # inputs stay:  M | S R C F E N
    dtype=np.int64,
)
EPS = 1e-9


@njit(cache=True)
def _multiple(a, b):
    """True when ``a`` is a whole multiple (>= 1) of ``b``."""
    q = a / b
    return q >= 1.0 - EPS and abs(q - np.round(q)) < 1e-9


@njit(cache=True)
def _footprint(op, t, sh, sw, in_h, in_w):
    """Elements of operand ``op`` in a tile ``t`` (7 dims)."""
    if op == 0:
        return t[1] * t[2] * t[5] * t[6]
    if op == 2:
        return t[0] * t[1] * t[3] * t[4]
    h = (t[3] - 1.0) * sh + t[5]
    w = (t[4] - 1.0) * sw + t[6]
    if h > in_h:
        h = in_h
    if w > in_w:
        w = in_w
    return t[0] * t[2] * h * w


@njit(cache=True)
def _first_moving_loop(op, lo, hi, T, Tagg, order):
    """Walk the loops over levels lo+1..hi from the innermost: ``(d, c, s)`` for the
    first loop relevant to ``op`` that iterates (dimension, trip count), after a run of
    irrelevant loops whose trip counts multiply to ``s``; ``d = -1`` when none moves."""
    s = 1.0
    for lv in range(lo + 1, hi + 1):
        o = order[lv]
        for j in range(7):
            d = ORDERS[o, j]
            c = T[lv, d] / Tagg[lv - 1, d]
            if c <= 1.0 + EPS:
                continue
            if RELEVANT[op, d]:
                return d, c, s
            s *= c
    return -1, 1.0, s


@njit(cache=True)
def _stationary(op, lo, hi, T, Tagg, order):
    """Product of the innermost run of loops irrelevant to ``op`` over levels lo+1..hi."""
    return _first_moving_loop(op, lo, hi, T, Tagg, order)[2]


@njit(cache=True)
def _slide(hi, T, Tagg, order, D, sh, sw):
    """Share of an innermost input tile's footprint that a load brings in, on average,
    when the loop that moves it is a sliding window: the innermost loop relevant to
    inputs over levels 1..hi steps along output columns ``F`` (rows ``E``) with the
    whole filter width ``S`` (height ``R``) in the tile, so consecutive windows share
    ``S - stride`` columns and only ``F_t x stride`` new ones enter, after the first of
    the loop's ``n`` steps. 1 when no such loop moves the tile."""
    d, c, _ = _first_moving_loop(1, 0, hi, T, Tagg, order)
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


@njit(cache=True)
def evaluate(T, P, order, D, sh, sw, in_h, in_w, sp, has_noc,
             holds, group_of, group_cap, backing, rd, wr, noc_pj, mac_pj,
             elem_bytes, f_exec, w_ratio, w_idx_per_mac, i_top_ratio, g_weights, g_keep, fills,
             o_top_ratio, loops_ok, slide, acc):
    """Energy (pJ) of one mapping; ``acc`` receives element accesses.

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
    for lv in range(K):
        if backing[lv]:
            continue
        used = np.zeros(3)
        for op in range(3):
            if holds[lv, op]:
                b = elem_bytes[lv, op] * (w_ratio if op == 0 else 1.0)
                used[group_of[lv, op]] += _footprint(op, T[lv], sh, sw, in_h, in_w) * b
        for g in range(3):
            if used[g] > group_cap[lv, g] * (1.0 + EPS):
                return np.inf

    acc[:, :, :] = 0.0
    macs = 1.0
    for d in range(7):
        macs *= D[d]
    executed = macs * f_exec
    n_out = D[0] * D[1] * D[3] * D[4]
    p_prod = 1.0
    for d in range(7):
        p_prod *= P[d]
    agg = np.empty(7)

    keep0 = _tile_keep(T, g_weights, g_keep)
    acc[0, 0, 0] = executed * (1.0 + w_idx_per_mac)
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
            ntiles = 1.0
            for d in range(7):
                ntiles *= D[d] / T[prev, d]
            deliveries = ntiles / _stationary(op, prev, lv, T, Tagg, order)
            fp = _footprint(op, T[prev], sh, sw, in_h, in_w)
            noc = 0.0
            if has_noc and sp >= 0 and prev <= sp < lv:
                for d in range(7):
                    agg[d] = T[prev, d] * P[d]
                up = deliveries / p_prod * _footprint(op, agg, sh, sw, in_h, in_w)
                noc = deliveries * fp
            else:
                up = deliveries * fp
            if prev == 0 and op != 0:
                up *= keep0                 # a tile without weights loads no inputs,
                noc *= keep0                # and leaves no partial sums
            if prev == 0 and op == 1 and slide:
                f = _slide(lv, T, Tagg, order, D, sh, sw)
                up *= f
                noc *= f
            if op == 2:
                if noc > 0.0:
                    _accumulate(acc, prev, v_prev, noc)      # in the holder below
                    _accumulate(acc, K, noc, up)             # across the array
                else:
                    _accumulate(acc, prev, v_prev, up)
                v_prev = up
            else:
                scale = w_ratio if op == 0 else 1.0
                acc[lv, op, 0] += up * (i_top_ratio if op == 1 and lv == top_in else scale)
                acc[K, op, 0] += noc * scale
                # the fill: every copy written into the receiving level
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


@njit(cache=True)
def _cost(T, P, order, ctx, acc):
    """:func:`evaluate` with the layer and device constants packed in ``ctx``."""
    (D, sh, sw, in_h, in_w, sp, has_noc, holds, group_of, group_cap, backing, rd, wr,
     noc_pj, mac_pj, elem_bytes, f_exec, w_ratio, w_idx_per_mac, i_top_ratio, g_weights,
     g_keep, fills, o_top_ratio, loops_ok, slide) = ctx
    return evaluate(T, P, order, D, sh, sw, in_h, in_w, sp, has_noc, holds, group_of,
                    group_cap, backing, rd, wr, noc_pj, mac_pj, elem_bytes, f_exec,
                    w_ratio, w_idx_per_mac, i_top_ratio, g_weights, g_keep, fills, o_top_ratio,
                    loops_ok, slide, acc)


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def search(T0, P, order0, free_from, cand, ncand, minT0, ctx, max_iter):
    """Hill-climb from ``T0``/``order0``: single-dimension steps (with the tiles
    above and below following), paired grow-one/shrink-another steps at one level,
    and order changes at levels ``free_from`` and above (1: every level's order is
    searched; 2: level 1's, which sets what stays in the innermost level, is the
    dataflow's); take the best improving neighbour until none improves.

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
                        best_order = order.copy()
                    if direction < 0:
                        continue
                    # Grow d, shrink another dimension at the same level.
                    for d2 in range(7):
                        if d2 == d:
                            continue
                        trial2 = trial.copy()
                        if not _step(trial2, P, sp, lv, d2, -1, cand, ncand, minT0, D, K):
                            continue
                        e = _cost(trial2, P, order, ctx, acc)
                        if e < cand_best * (1.0 - 1e-12):
                            cand_best = e
                            best_T = trial2
                            best_order = order.copy()
        if free_from < K:
            for lv in range(free_from, K):
                for o in range(3):
                    if o == order[lv]:
                        continue
                    trial_order = order.copy()
                    trial_order[lv] = o
                    e = _cost(T, P, trial_order, ctx, acc)
                    if e < cand_best * (1.0 - 1e-12):
                        cand_best = e
                        best_T = T.copy()
                        best_order = trial_order
        if cand_best >= best:
            break
        best = cand_best
        T = best_T
        order = best_order
    return best, T, order


@njit(cache=True)
def _jump(T, P, sp, lv, d, direction, cand, ncand, minT0, D, K):
    """Step T[lv, d] as far as it goes in ``direction``; False if it cannot move."""
    moved = False
    while True:
        trial = T.copy()
        if not _step(trial, P, sp, lv, d, direction, cand, ncand, minT0, D, K):
            return moved
        T[:, :] = trial
        moved = True


@njit(cache=True)
def refine(T, P, order, free_from, cand, ncand, minT0, ctx, max_iter):
    """Iterated local search around a hill-climbed mapping: kick one tile to its
    smallest or largest legal size, climb again, keep the result if it is cheaper;
    repeat until no kick helps. Returns ``(energy, T, order)``."""
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
                    e, t2, o2 = search(kicked, P, best_order, free_from, cand, ncand, minT0,
                                       ctx, max_iter)
                    if e < best * (1.0 - 1e-9):
                        best = e
                        best_T = t2
                        best_order = o2
                        improved = True
    return best, best_T, best_order
