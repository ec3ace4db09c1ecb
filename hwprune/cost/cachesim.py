"""Trace-driven, multi-level, set-associative LRU cache simulator (numba).

Every level is write-back and write-allocate. A trace is four arrays of equal length:
byte ``addr`` (int64), access ``size`` in bytes, ``is_write`` and ``struct`` (an id
0..S-1 naming the data structure: weight values, indices, inputs, outputs, ...).
An access that straddles lines touches every line it covers.

Counting follows pycachesim (Hammer et al., RRZE), so the two agree exactly:

* ``loads``/``stores`` count requests arriving at a level (one per access, whatever
  the number of lines it covers); ``hits``/``misses`` count lines.
* A load miss fetches the whole line from the next level (a load there), then puts
  it in the most-recently-used position, evicting the least-recently-used line. A
  dirty victim is written back: a store of the whole line to the next level.
* A store marks its lines dirty. A store to a missing line first loads it at the same
  level (write-allocate): a load and a miss there.
* ``evictions`` counts valid lines replaced; ``writebacks`` the dirty ones
  (pycachesim's ``EVICT``).
* A store that hits a line refreshes its LRU position when ``refresh_on_store`` is
  true (hardware LRU, the default here). pycachesim leaves the position unchanged;
  ``refresh_on_store=False`` reproduces that.

The last level loads from and writes back to main memory, whose line loads and stores
are counted too. The simulator keeps its state between calls, so a trace can be fed
in chunks of any size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from ..errors import InputError
from ..hardware.profile import DeviceProfile

# Counter columns (per level x structure).
LOADS, STORES, HITS, MISSES, EVICTIONS, WRITEBACKS, LOAD_BYTES, STORE_BYTES, HIT_BYTES, \
    MISS_BYTES = range(10)
COUNTERS = ("loads", "stores", "hits", "misses", "evictions", "writebacks", "load_bytes",
            "store_bytes", "hit_bytes", "miss_bytes")
# Task kinds of the simulator's work stack.
T_LOAD, T_STORE, T_LINE_LOAD, T_LINE_STORE, T_INJECT, T_DIRTY, T_LINES_LOAD, T_LINES_STORE = range(8)
STACK = 256
MAX_CACHE_LINES = 1 << 26
"""Most cache lines (ways x sets, all levels together) one simulator holds: 67,108,864,
i.e. 1 GiB of state at 16 bytes per line (4 GiB of cache with 64-byte lines, over 3x
the largest L3 shipped, AMD's 1152 MB Genoa-X). A larger hierarchy is an
:class:`InputError` naming the level, before anything is allocated."""
STATE_BYTES_PER_LINE = 16


@dataclass(frozen=True)
class CacheLevel:
    """One cache level: ``sets x ways`` lines of ``line_bytes``."""

    name: str
    sets: int
    ways: int
    line_bytes: int

    def __post_init__(self) -> None:
        if self.sets < 1 or self.ways < 1 or self.line_bytes < 1:
            raise InputError(f"cache level {self.name!r}: sets, ways and line_bytes must be >= 1")
        if self.line_bytes & (self.line_bytes - 1):
            raise InputError(f"cache level {self.name!r}: line_bytes must be a power of two, "
                             f"got {self.line_bytes}")

    @property
    def size_bytes(self) -> int:
        return self.sets * self.ways * self.line_bytes


def to_pycachesim(levels: list[CacheLevel]):
    """The same hierarchy in pycachesim (LRU, write-back, write-allocate), for
    cross-checks: returns ``(simulator, caches)``. Needs ``pip install pycachesim``."""
    try:
        import cachesim
    except ImportError:
        raise InputError("pycachesim is not installed; pip install pycachesim") from None
    memory = cachesim.MainMemory()
    caches, below = [], None
    for lv in reversed(levels):
        cache = cachesim.Cache(lv.name, lv.sets, lv.ways, lv.line_bytes, "LRU", write_back=True,
                               write_allocate=True, store_to=below, load_from=below)
        caches.insert(0, cache)
        below = cache
    memory.load_to(caches[-1])
    memory.store_from(caches[-1])
    return cachesim.CacheSimulator(caches[0], memory), caches


def levels_of(dev: DeviceProfile) -> list[CacheLevel]:
    """The cache levels of a device profile (one core's view: one instance of each)."""
    levels = [CacheLevel(lvl.name, lvl.sets, lvl.associativity, lvl.line_bytes)
              for lvl in dev.memory if lvl.is_cache]
    if not levels:
        raise InputError(
            f"device {dev.id!r} has no cache levels (its memory: "
            + ", ".join(f"{lvl.name} ({lvl.kind})" for lvl in dev.memory)
            + "); the cache simulator needs a device with at least one level of kind 'cache'"
        )
    return levels


# Cache state is one int64 array, ``lines``, with two entries per way (a "slot"): the
# way's tag at ``2 * slot`` and its use stamp at ``2 * slot + 1``. A level's sets are
# consecutive runs of ``ways`` slots, the levels one after another. One array (rather
# than a tag array and a stamp array) leaves the compiled loop one register freer.
#
# A tag packs the line id, owner structure and dirty bit (-1: invalid way). LRU order
# is kept as a use stamp per way (0 = never used) from a global clock that counts line
# uses: a hit writes one stamp instead of shifting the set, and a line stays in its way
# until evicted, so the simulator can remember where a structure's last line sits and
# check it with one compare (see ``fast_loop``). This is exact LRU: within a set, stamp
# order is recency order.
OWNER_SHIFT = 48
DIRTY_BIT = np.int64(1) << 62
LINE_MASK = (np.int64(1) << OWNER_SHIFT) - 1
OWNER_MASK = (np.int64(1) << 14) - 1
MAX_ADDRESS = (1 << 48) - 1   # exclusive end: line id 2^48 - 1 would equal an empty way
# Slot indices are unsigned (uint64): numba then emits no negative-index wraparound, and
# the way loops compile to a few moves instead of a slow generic loop (about 3x faster
# misses on the 2-core reference machine). numba types int64-op-uint64 as float64, so
# every mixed expression below casts explicitly.
U0 = np.uint64(0)
U1 = np.uint64(1)


@njit(cache=True, inline="always")
def _tag(slot):
    """Index in ``lines`` of the tag of ``slot`` (uint64)."""
    return slot << U1


@njit(cache=True, inline="always")
def _use(slot):
    """Index in ``lines`` of the use stamp of ``slot`` (uint64)."""
    return (slot << U1) + U1


@njit(cache=True, inline="always")
def _base(cl, mask, n_sets, n_ways, offset):
    """Slot (uint64) of way 0 of the set of line ``cl`` (int64) at a level with
    ``n_sets`` sets of ``n_ways`` ways starting at slot ``offset``: the set is a mask of
    the line id when the set count is a power of two (``mask`` non-zero; no division),
    else a modulo."""
    u = np.uint64(cl)
    s = u & np.uint64(mask) if mask != 0 else u % np.uint64(n_sets)
    return np.uint64(offset) + s * np.uint64(n_ways)


@njit(cache=True, inline="always")
def _set_base(cl, lv, sets, masks, ways, offsets):
    """:func:`_base` at level ``lv`` of geometry arrays (the general path)."""
    return _base(cl, masks[lv], sets[lv], ways[lv], offsets[lv])


@njit(cache=True, inline="always")
def _find(lines, base, ways, cl):
    """Way (int64) of line ``cl`` in the set at slot ``base``, or -1.

    Branch-free: it looks at every way instead of stopping at the match, because where
    a gathered line sits is random and an early exit mispredicts about once a search
    (that costs more than the few extra compares). An invalid way holds -1, whose line
    bits (``LINE_MASK``) are no valid line id (see ``MAX_ADDRESS``)."""
    loc = np.int64(-1)
    i = U0
    while i < ways:
        loc = np.int64(i) if (lines[_tag(base + i)] & LINE_MASK) == cl else loc
        i += U1
    return loc


@njit(cache=True, inline="always")
def _victim(lines, base, ways):
    """Way (uint64) holding the least recently used line of the set at slot ``base``:
    the smallest stamp. Empty ways have stamp 0, below every used one, so they fill
    first.

    Branch-free (selects, not an ``if``): stamps of a set are in random order, so a
    branch per way mispredicts often (measured: 10-14% off L1-miss-heavy traces)."""
    best = U0
    low = lines[_use(base)]
    i = U1
    while i < ways:
        s = lines[_use(base + i)]
        older = s < low
        best = i if older else best
        low = s if older else low
        i += U1
    return best


@njit(cache=True, inline="always")
def _stamp(lines, slot, now):
    """Make the line in ``slot`` its set's most recently used: give it the next value of
    the global use clock ``now``; returns the new clock."""
    now += 1
    lines[_use(slot)] = now
    return now


@njit(cache=True, inline="always")
def _touch(lines, slot, clock):
    """:func:`_stamp` with the clock kept in ``clock[0]`` (the general path)."""
    clock[0] = _stamp(lines, slot, clock[0])


@njit(cache=True, inline="always")
def _place(lines, clock, slot, cl, sid):
    """Put ``cl`` (clean, owned by ``sid``) in ``slot`` as the most recently used line;
    returns the tag it replaced."""
    victim = lines[_tag(slot)]
    lines[_tag(slot)] = cl | (sid << OWNER_SHIFT)
    _touch(lines, slot, clock)
    return victim


@njit(cache=True, inline="always")
def _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, top, kind, lv, a, b, c,
          sid):
    """Push one task on the work stack; returns the new top."""
    stack_kind[top] = kind
    stack_level[top] = lv
    stack_a[top] = a
    stack_b[top] = b
    stack_c[top] = c
    stack_s[top] = sid
    return top + 1


@njit(cache=True)
def _access(start, a, n, write, sid, sets, masks, ways, shift, offsets, lines, clock,
            counts, memory, refresh_on_store, stack_kind, stack_level, stack_a, stack_b,
            stack_c, stack_s):
    """One request arriving at level ``start``, followed through the hierarchy with a
    work stack of line tasks (the general path)."""
    n_levels = sets.shape[0]
    top = _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, 0,
                T_STORE if write else T_LOAD, start, a, n, 0, sid)
    while top > 0:
        top -= 1
        kind = stack_kind[top]
        lv = stack_level[top]
        ta = stack_a[top]
        tb = stack_b[top]
        ts = stack_s[top]
        if lv == n_levels:
            # Main memory: whole lines.
            if kind == T_LOAD:
                memory[ts, 0] += 1
                memory[ts, 1] += tb
            else:
                memory[ts, 2] += 1
                memory[ts, 3] += tb
            continue
        line = np.int64(1) << shift[lv]
        if kind == T_LOAD or kind == T_STORE:
            if kind == T_LOAD:
                counts[lv, ts, LOADS] += 1
                counts[lv, ts, LOAD_BYTES] += tb
            else:
                counts[lv, ts, STORES] += 1
                counts[lv, ts, STORE_BYTES] += tb
            # A cursor over the request's lines: one line is expanded at a time, so the
            # stack stays a few entries deep per level however long the access is.
            top = _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, top,
                        T_LINES_LOAD if kind == T_LOAD else T_LINES_STORE, lv,
                        ta >> shift[lv], tb, (ta + tb - 1) >> shift[lv], ts)
        elif kind == T_LINES_LOAD or kind == T_LINES_STORE:
            last = stack_c[top]
            if ta < last:                          # the rest of the range, after this line
                top = _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, top,
                            kind, lv, ta + 1, tb, last, ts)
            top = _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, top,
                        T_LINE_LOAD if kind == T_LINES_LOAD else T_LINE_STORE, lv, ta, tb, 0, ts)
        elif kind == T_LINE_LOAD:
            base = _set_base(ta, lv, sets, masks, ways, offsets)
            loc = _find(lines, base, ways[lv], ta)
            if loc >= 0:
                counts[lv, ts, HITS] += 1
                counts[lv, ts, HIT_BYTES] += min(tb, line)
                _touch(lines, base + np.uint64(loc), clock)
            else:
                counts[lv, ts, MISSES] += 1
                counts[lv, ts, MISS_BYTES] += min(tb, line)
                # Inject after the next level has delivered the line.
                top = _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, top,
                            T_INJECT, lv, ta, 0, 0, ts)
                top = _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, top,
                            T_LOAD, lv + 1, ta << shift[lv], line, 0, ts)
        elif kind == T_INJECT:
            base = _set_base(ta, lv, sets, masks, ways, offsets)
            # Injected lines are clean.
            victim = _place(lines, clock, base + _victim(lines, base, ways[lv]), ta, ts)
            if victim >= 0:
                v_owner = (victim >> OWNER_SHIFT) & OWNER_MASK
                counts[lv, v_owner, EVICTIONS] += 1
                if victim & DIRTY_BIT:
                    counts[lv, v_owner, WRITEBACKS] += 1
                    top = _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, top,
                                T_STORE, lv + 1, (victim & LINE_MASK) << shift[lv], line, 0, v_owner)
        elif kind == T_LINE_STORE:
            base = _set_base(ta, lv, sets, masks, ways, offsets)
            loc = _find(lines, base, ways[lv], ta)
            if loc >= 0:
                lines[_tag(base + np.uint64(loc))] |= DIRTY_BIT
                if refresh_on_store:
                    _touch(lines, base + np.uint64(loc), clock)
            else:
                # Write-allocate: load the line here, then mark it dirty.
                top = _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, top,
                            T_DIRTY, lv, ta, 0, 0, ts)
                top = _push(stack_kind, stack_level, stack_a, stack_b, stack_c, stack_s, top,
                            T_LOAD, lv, ta << shift[lv], line, 0, ts)
        else:  # T_DIRTY
            base = _set_base(ta, lv, sets, masks, ways, offsets)
            loc = _find(lines, base, ways[lv], ta)
            if loc >= 0:
                lines[_tag(base + np.uint64(loc))] |= DIRTY_BIT


@njit(cache=True, inline="always")
def _count_miss_chain(counts, memory, sid, deepest, times, shifts):
    """Count, below level 0, ``times`` level-0 misses of structure ``sid`` whose line was
    found at level ``deepest`` (``len(shifts)``: main memory): each level down to
    ``deepest`` receives a whole-line load from the level above, which misses until
    ``deepest`` hits it."""
    n_levels = len(shifts)
    for lv in range(1, min(deepest + 1, n_levels)):
        request = np.int64(1) << shifts[lv - 1]
        used = min(request, np.int64(1) << shifts[lv])
        counts[lv, sid, LOADS] += times
        counts[lv, sid, LOAD_BYTES] += times * request
        if lv == deepest:
            counts[lv, sid, HITS] += times
            counts[lv, sid, HIT_BYTES] += times * used
        else:
            counts[lv, sid, MISSES] += times
            counts[lv, sid, MISS_BYTES] += times * used
    if deepest == n_levels:
        memory[sid, 0] += times
        memory[sid, 1] += times * (np.int64(1) << shifts[n_levels - 1])


@njit(cache=True, inline="always")
def _dirty_victims_fit(lines, bases, victim_way, deepest, sets, masks, ways, shifts, offsets):
    """Whether every dirty victim of levels ``0..deepest-1`` finds its line one level
    down (after that level's own placement) or goes to memory, so that its write-back
    is a store hit there. If not, the general path must take the access."""
    n_levels = len(ways)
    for lv in range(deepest):
        victim = lines[_tag(bases[lv] + victim_way[lv])]
        if victim < 0 or not (victim & DIRTY_BIT) or lv + 1 == n_levels:
            continue
        nxt = lv + 1
        if shifts[nxt] < shifts[lv]:
            return False
        vcl = ((victim & LINE_MASK) << shifts[lv]) >> shifts[nxt]
        nb = _base(vcl, masks[nxt], sets[nxt], ways[nxt], offsets[nxt])
        vloc = _find(lines, nb, np.uint64(ways[nxt]), vcl)
        if vloc < 0:
            return False
        if nxt < deepest and bases[nxt] == nb and np.uint64(vloc) == victim_way[nxt]:
            # The next level places the requested line first, into this very way.
            return False
    return True


# The fast loop's per-structure scratch entries (see ``_compile_fast_loop``).
HINT, HIT_N, HIT_B, STORE_N, STORE_B, MISS_B, MISS_AT = range(7)


def _compile_fast_loop(geometry):
    """The fast loop of :meth:`CacheSimulator.run`, compiled for one hierarchy.

    ``geometry`` is ``(sets, masks, ways, shifts, offsets, refresh_on_store)``: tuples
    of Python ints, one entry per level (see :class:`CacheSimulator`), and the LRU
    policy switch. They are closure constants of the compiled function, so numba sees
    every level's way count, set mask and line size as a number: LLVM unrolls the level
    and way loops and folds the geometry into the code (measured on the 2-core
    reference machine: 15-30% less time per access than reading the geometry from
    arrays; with the policy switch as a run-time argument the hit loop took 40-70%
    longer). numba caches the machine code of each geometry on disk (closure values
    are part of its cache key), so a hierarchy compiles once, in about 4 s there.
    """
    sets, masks, ways, shifts, offsets, refresh_on_store = geometry
    n_levels = len(ways)
    w0 = ways[0]
    sh0 = shifts[0]
    line0 = 1 << sh0
    # Per structure, ``1 << stride_shift`` int64 scratch entries: the hint slot, level-0
    # load hits and their bytes, store hits and their bytes, the bytes of load misses,
    # then load misses by the level that held the line (``MISS_AT + 1`` .. ``MISS_AT +
    # n_levels``, the last being main memory). Counting misses by that level replaces
    # a dozen counter updates per miss with two; they are expanded on return.
    stride_shift = (MISS_AT + n_levels).bit_length()

    @njit(cache=True)
    def fast_loop(addr, size, is_write, struct, start, lines, clock, counts, memory,
                  last_slot):
        """Run accesses ``start..`` of a chunk; returns the index of the first access it
        cannot take (a straddling access, or a miss whose dirty victim would need a
        write-allocate one level down), or the chunk length when all are done, or
        ``-1 - k`` when access ``k`` is invalid (see :meth:`CacheSimulator.run`; the
        state is then partly updated, for the caller to restore).

        The loop makes no calls to the general path: every decision that could need it
        is taken before any state changes, so that :func:`_one` can take the access
        instead.

        ``last_slot[sid]`` is the level-0 slot where structure ``sid``'s previous line
        was found or placed. A kernel's structures each walk their own lines (weights
        and indices stream, inputs gather), so the next access of a structure is often
        to the same line: one compare of that slot's tag replaces the search of the set.
        The hint is only a guess, checked before use, so any value is safe.
        """
        n_struct = counts.shape[1]
        work = np.zeros(n_struct << stride_shift, dtype=np.int64)
        for sid in range(n_struct):
            work[(sid << stride_shift) + HINT] = np.int64(last_slot[sid])
        # Per level, for the miss path: the base slot of the missing line's set and the
        # way it would evict (computed once per miss, used by the check and the
        # placement).
        bases = np.zeros(n_levels, dtype=np.uint64)
        victim_way = np.zeros(n_levels, dtype=np.uint64)
        stop = addr.shape[0]
        n_struct_u = np.uint64(n_struct)
        now = clock[0]      # the use clock, in a register for the loop (see ``_stamp``)
        # Unsigned loop and structure indices: numba then emits no negative-index
        # wraparound on the per-access array reads.
        k = np.uint64(start)
        end = np.uint64(addr.shape[0])
        while k < end:
            # Level-0 hits, in a loop of their own: the miss path below runs once per
            # level-0 miss, between runs of this loop (measured: 30% less time on the
            # hint path than one loop that goes on after a miss).
            while k < end:
                a = addr[k]
                n = np.int64(size[k])
                a_end = a + n
                sid = np.uint64(struct[k])
                # The access must have 0 <= a, 1 <= n, a + n <= MAX_ADDRESS (no bit
                # from 48 up, which also catches a negative a, n - 1 or sum) and a
                # known structure: else stop, leaving the state for the caller to
                # restore.
                if ((a | (n - 1) | a_end) >> 48) != 0 or sid >= n_struct_u:
                    return -np.int64(k) - 1
                first = a >> sh0
                if first != (a_end - 1) >> sh0:
                    break
                w = sid << np.uint64(stride_shift)
                slot = np.uint64(work[w])
                if (lines[_tag(slot)] & LINE_MASK) != first:
                    base = _base(first, masks[0], sets[0], w0, offsets[0])
                    loc = _find(lines, base, np.uint64(w0), first)
                    if loc < 0:
                        break
                    slot = base + np.uint64(loc)
                    work[w] = np.int64(slot)
                if is_write[k]:
                    work[w + np.uint64(STORE_N)] += 1
                    work[w + np.uint64(STORE_B)] += n
                    lines[_tag(slot)] |= DIRTY_BIT
                    if refresh_on_store:
                        now = _stamp(lines, slot, now)
                else:
                    work[w + np.uint64(HIT_N)] += 1
                    work[w + np.uint64(HIT_B)] += n
                    now = _stamp(lines, slot, now)
                k += U1
            if k == end:
                break
            a = addr[k]
            n = np.int64(size[k])
            first = a >> sh0
            if first != (a + n - 1) >> sh0:
                stop = np.int64(k)
                break
            sid = np.uint64(struct[k])
            w = sid << np.uint64(stride_shift)
            write = is_write[k]
            # Miss at level 0. Find the first level holding the line, noting each set's
            # base and, where the line misses, its least recently used way and whether
            # that victim is dirty (no side effects).
            line_addr = first << sh0
            bases[0] = _base(first, masks[0], sets[0], w0, offsets[0])
            victim_way[0] = _victim(lines, bases[0], np.uint64(w0))
            victim = lines[_tag(bases[0] + victim_way[0])]
            dirty = victim >= 0 and (victim & DIRTY_BIT) != 0
            deepest = n_levels
            hit_loc = -1
            for lv in range(1, n_levels):
                cl = line_addr >> shifts[lv]
                bases[lv] = _base(cl, masks[lv], sets[lv], ways[lv], offsets[lv])
                hit_loc = _find(lines, bases[lv], np.uint64(ways[lv]), cl)
                if hit_loc >= 0:
                    deepest = lv
                    break
                victim_way[lv] = _victim(lines, bases[lv], np.uint64(ways[lv]))
                victim = lines[_tag(bases[lv] + victim_way[lv])]
                dirty = dirty or (victim >= 0 and (victim & DIRTY_BIT) != 0)
            if dirty and not _dirty_victims_fit(lines, bases, victim_way, deepest, sets,
                                                masks, ways, shifts, offsets):
                stop = np.int64(k)
                break
            # Safe: do it. Counters first.
            if write:
                # Write-allocate: a store, a whole-line load, a miss.
                counts[0, sid, STORES] += 1
                counts[0, sid, STORE_BYTES] += n
                counts[0, sid, LOADS] += 1
                counts[0, sid, LOAD_BYTES] += line0
                counts[0, sid, MISSES] += 1
                counts[0, sid, MISS_BYTES] += line0
                _count_miss_chain(counts, memory, sid, deepest, 1, shifts)
            else:
                work[w + np.uint64(MISS_B)] += n
                work[w + np.uint64(MISS_AT + deepest)] += 1
            if deepest < n_levels:
                now = _stamp(lines, bases[deepest] + np.uint64(hit_loc), now)
            slot = U0
            # Place the line at levels deepest-1 .. 0. The loop runs over every level
            # and skips the deeper ones, so that its trip count is a constant and LLVM
            # unrolls it (measured: 8-10% less time on the CSR trace, 12% on L2
            # gathers, than ``range(deepest - 1, -1, -1)``).
            for lv in range(n_levels - 1, -1, -1):
                if lv >= deepest:
                    continue
                slot = bases[lv] + victim_way[lv]   # unchanged since the check: only
                victim = lines[_tag(slot)]          # this placement changes the set
                lines[_tag(slot)] = (line_addr >> shifts[lv]) | (np.int64(sid) << OWNER_SHIFT)
                now = _stamp(lines, slot, now)
                if victim < 0:
                    continue
                v_owner = (victim >> OWNER_SHIFT) & OWNER_MASK
                counts[lv, v_owner, EVICTIONS] += 1
                if not (victim & DIRTY_BIT):
                    continue
                counts[lv, v_owner, WRITEBACKS] += 1
                wb = np.int64(1) << shifts[lv]
                nxt = lv + 1
                if nxt == n_levels:
                    memory[v_owner, 2] += 1
                    memory[v_owner, 3] += wb
                    continue
                vcl = ((victim & LINE_MASK) << shifts[lv]) >> shifts[nxt]
                nb = _base(vcl, masks[nxt], sets[nxt], ways[nxt], offsets[nxt])
                vslot = nb + np.uint64(_find(lines, nb, np.uint64(ways[nxt]), vcl))
                counts[nxt, v_owner, STORES] += 1
                counts[nxt, v_owner, STORE_BYTES] += wb
                lines[_tag(vslot)] |= DIRTY_BIT
                if refresh_on_store:
                    now = _stamp(lines, vslot, now)
            # ``slot`` is now the line's level-0 slot.
            work[w + np.uint64(HINT)] = np.int64(slot)
            if write:
                lines[_tag(slot)] |= DIRTY_BIT
            k += U1
        clock[0] = now
        for sid in range(n_struct):
            w = sid << stride_shift
            last_slot[sid] = np.uint64(work[w + HINT])
            # Level-0 hits: for an access within one line, its hit bytes are its bytes.
            counts[0, sid, LOADS] += work[w + HIT_N]
            counts[0, sid, LOAD_BYTES] += work[w + HIT_B]
            counts[0, sid, HITS] += work[w + HIT_N]
            counts[0, sid, HIT_BYTES] += work[w + HIT_B]
            counts[0, sid, STORES] += work[w + STORE_N]
            counts[0, sid, STORE_BYTES] += work[w + STORE_B]
            # Load misses: level 0 counts each with its bytes, the levels below whole
            # lines.
            counts[0, sid, LOAD_BYTES] += work[w + MISS_B]
            counts[0, sid, MISS_BYTES] += work[w + MISS_B]
            for deepest in range(1, n_levels + 1):
                times = work[w + MISS_AT + deepest]
                counts[0, sid, LOADS] += times
                counts[0, sid, MISSES] += times
                _count_miss_chain(counts, memory, sid, deepest, times, shifts)
        return stop

    return fast_loop


_FAST_LOOPS: dict = {}


def _fast_loop(geometry):
    """The compiled fast loop for ``geometry`` (compiled or loaded once per process)."""
    loop = _FAST_LOOPS.get(geometry)
    if loop is None:
        loop = _FAST_LOOPS[geometry] = _compile_fast_loop(geometry)
    return loop


@njit(cache=True)
def _trace_valid(addr, size, struct, n_struct):
    """Whether every access of a chunk is valid (see :meth:`CacheSimulator.run`): the
    fast loop's test, in one branch-free pass that LLVM vectorizes. No bit from 48 up
    in ``a | (n - 1) | (a + n)`` means 0 <= a, 1 <= n and a + n <= 2^48 - 1 (an int64
    overflow of a + n sets the sign bit)."""
    high = np.int64(0)
    lo_s, hi_s = struct[0], struct[0]
    for i in range(addr.shape[0]):
        a = addr[i]
        n = size[i]
        s = struct[i]
        high |= a | (n - 1) | (a + n)
        lo_s = min(lo_s, s)
        hi_s = max(hi_s, s)
    return (high >> 48) == 0 and lo_s >= 0 and hi_s < n_struct


@njit(cache=True)
def _one(k, addr, size, is_write, struct, sets, masks, ways, shift, offsets, lines, clock,
         counts, memory, refresh_on_store):
    """Access ``k`` through the general path (the work stack)."""
    stack_kind = np.empty(STACK, dtype=np.int64)
    stack_level = np.empty(STACK, dtype=np.int64)
    stack_a = np.empty(STACK, dtype=np.int64)
    stack_b = np.empty(STACK, dtype=np.int64)
    stack_c = np.empty(STACK, dtype=np.int64)
    stack_s = np.empty(STACK, dtype=np.int64)
    _access(0, addr[k], np.int64(size[k]), is_write[k], np.int64(struct[k]), sets, masks, ways,
            shift, offsets, lines, clock, counts, memory, refresh_on_store, stack_kind,
            stack_level,
            stack_a, stack_b, stack_c, stack_s)


def _check_state_size(levels: list[CacheLevel]) -> None:
    """Refuse a hierarchy whose state would exceed :data:`MAX_CACHE_LINES` lines."""
    total = 0
    for lv in levels:
        lines = lv.sets * lv.ways
        total += lines
        if total > MAX_CACHE_LINES:
            inner = total - lines
            raise InputError(
                f"cache level {lv.name!r} ({lv.size_bytes} bytes: {lines} lines of "
                f"{lv.line_bytes} bytes) is too large to simulate: the hierarchy would hold "
                f"{total} lines ({total * STATE_BYTES_PER_LINE / 2**30:.3g} GiB of simulator "
                f"state), and the simulator holds at most {MAX_CACHE_LINES} lines "
                f"(MAX_CACHE_LINES, {MAX_CACHE_LINES * STATE_BYTES_PER_LINE >> 30} GiB of "
                "state)"
                + (f", {inner} of them taken by the levels inside it" if inner else "")
                + "; give the level a smaller size_bytes or larger line_bytes "
                "(see docs/cache-simulator.md)")


class CacheSimulator:
    """A cache hierarchy with state; feed it traces with :meth:`run`.

    Args:
        levels: innermost first; at most :data:`MAX_CACHE_LINES` lines in all
            (:class:`InputError` naming the level that passes it).
        structures: names of the structure ids used in traces (for the result table).
        refresh_on_store: whether a store hit refreshes LRU order (see module docstring).
    """

    def __init__(self, levels: list[CacheLevel], structures: tuple[str, ...] = ("data",),
                 refresh_on_store: bool = True):
        if not levels:
            raise InputError("a cache hierarchy needs at least one level")
        _check_state_size(levels)
        self.levels = list(levels)
        self.structures = tuple(structures)
        self.refresh_on_store = bool(refresh_on_store)
        # Unsigned geometry (see U0/U1); a zero mask means "sets is not a power of two,
        # take the modulo" (for one set both give set 0).
        self._sets = np.array([lv.sets for lv in levels], dtype=np.uint64)
        self._masks = np.array([lv.sets - 1 if lv.sets & (lv.sets - 1) == 0 else 0
                                for lv in levels], dtype=np.uint64)
        self._ways = np.array([lv.ways for lv in levels], dtype=np.uint64)
        self._shift = np.array([lv.line_bytes.bit_length() - 1 for lv in levels], dtype=np.int64)
        sizes = self._sets * self._ways
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.uint64)
        self._lines = np.zeros(2 * int(sizes.sum()), dtype=np.int64)   # see ``_tag``
        self._lines[0::2] = -1
        self._clock = np.zeros(1, dtype=np.int64)
        self._last_slot = np.zeros(len(self.structures), dtype=np.uint64)
        self.counts = np.zeros((len(levels), len(self.structures), len(COUNTERS)), dtype=np.int64)
        # The fast loop's miss chain needs every request to cover one line at each level
        # (line sizes that do not shrink going down); otherwise the general path takes
        # every access.
        self._geometry = (tuple(tuple(int(v) for v in column) for column in (
            self._sets, self._masks, self._ways, self._shift, self._offsets))
            if np.all(np.diff(self._shift) >= 0) else None)
        self.memory = np.zeros((len(self.structures), 4), dtype=np.int64)
        self.accesses = 0

    def run(self, addr, size=4, is_write=False, struct=0) -> "CacheSimulator":
        """Simulate one chunk. ``size``, ``is_write`` and ``struct`` may be scalars
        (broadcast without copying).

        Every access must have an address >= 0, a size >= 1, an end (address + size) of
        at most 2^48 - 1 and a structure id in ``0..len(structures) - 1``; otherwise
        :class:`InputError` names the first bad access and the simulator is left as it
        was. A short chunk is checked in one pass before it runs. A long one (at least
        as many accesses as the cache state has int64 entries) is checked by the fast
        loop as it goes, with the state copied first and put back on a bad access: the
        pass reads every access's 25 bytes once more and costs about 1.2 ns per access
        on the 2-core reference machine (memory bound), the in-loop check a fraction of
        that.
        """
        addr = np.ascontiguousarray(addr, dtype=np.int64)
        n = addr.shape[0]
        if addr.ndim != 1:
            raise InputError(f"trace addresses must be a 1-D array, got shape {addr.shape}")
        columns = []
        for value, dtype in ((size, np.int64), (is_write, np.bool_), (struct, np.int64)):
            arr = np.asarray(value, dtype=dtype)
            if arr.ndim == 0:
                arr = np.broadcast_to(arr, (n,))
            elif arr.shape != (n,):
                raise InputError(f"trace columns must all have {n} entries, got shape {arr.shape}")
            columns.append(arr)
        size, is_write, struct = columns
        fast = (None if self._geometry is None
                else _fast_loop(self._geometry + (self.refresh_on_store,)))
        saved = None
        if fast is not None and n >= self._lines.size:
            saved = [a.copy() for a in self._state_arrays()]
        elif n and not _trace_valid(addr, size, struct, len(self.structures)):
            raise self._bad_access(addr, size, struct)
        state = (self._sets, self._masks, self._ways, self._shift, self._offsets, self._lines,
                 self._clock, self.counts, self.memory, self.refresh_on_store)
        k = 0
        while k < n:
            if fast is not None:
                k = fast(addr, size, is_write, struct, k, self._lines, self._clock, self.counts,
                         self.memory, self._last_slot)
                if k < 0:        # only where ``saved`` is set: the pass has the same test
                    for array, copy in zip(self._state_arrays(), saved):
                        array[...] = copy
                    raise self._bad_access(addr, size, struct)
            if k < n:
                _one(k, addr, size, is_write, struct, *state)
                k += 1
        self.accesses += n
        return self

    def _state_arrays(self) -> tuple[np.ndarray, ...]:
        """Every array :meth:`run` changes."""
        return self._lines, self._clock, self.counts, self.memory, self._last_slot

    def _bad_access(self, addr, size, struct) -> InputError:
        """The error naming the first invalid access of a chunk (see :meth:`run`)."""
        bad = (addr < 0) | (size < 1) | (struct < 0) | (struct >= len(self.structures))
        # Where the rest holds, size >= 1 and MAX_ADDRESS - size cannot overflow.
        bad |= addr > MAX_ADDRESS - np.where(bad, 1, size)
        k = int(np.argmax(bad))
        a, n, s = int(addr[k]), int(size[k]), int(struct[k])
        return InputError(
            f"trace access {k} (address {a}, size {n}, an end of {a + n}, structure id {s}) is "
            f"out of range: addresses must be in [0, 2^48 - 1), sizes >= 1, ends at most "
            f"2^48 - 1 and structure ids in 0..{len(self.structures) - 1}")

    def table(self) -> pd.DataFrame:
        """One row per (level, structure), then a total row per level, then main memory.

        Columns: ``level``, ``structure`` (``all`` for totals), ``accesses``
        (loads + stores arriving), ``loads``, ``stores``, ``hits``, ``misses``
        (lines), ``evictions``, ``writebacks``, ``load_bytes``, ``store_bytes``,
        ``hit_bytes``, ``miss_bytes``, ``miss_rate`` (misses / (hits + misses)).
        Main memory rows count whole-line ``loads`` and ``stores``.
        """
        rows = []
        for li, level in enumerate(self.levels):
            per = [(name, self.counts[li, si]) for si, name in enumerate(self.structures)]
            per.append(("all", self.counts[li].sum(axis=0)))
            for name, c in per:
                row = {"level": level.name, "structure": name,
                       "accesses": int(c[LOADS] + c[STORES])}
                row.update({counter: int(c[i]) for i, counter in enumerate(COUNTERS)})
                lines = c[HITS] + c[MISSES]
                row["miss_rate"] = float(c[MISSES] / lines) if lines else 0.0
                rows.append(row)
        for si, name in enumerate([*self.structures, "all"]):
            m = self.memory.sum(axis=0) if name == "all" else self.memory[si]
            rows.append({"level": "memory", "structure": name, "accesses": int(m[0] + m[2]),
                         "loads": int(m[0]), "stores": int(m[2]), "load_bytes": int(m[1]),
                         "store_bytes": int(m[3])})
        df = pd.DataFrame(rows)
        for col in COUNTERS:
            df[col] = df[col].fillna(0).astype(np.int64)
        df["miss_rate"] = df["miss_rate"].fillna(0.0)
        return df[["level", "structure", "accesses", *COUNTERS, "miss_rate"]]
