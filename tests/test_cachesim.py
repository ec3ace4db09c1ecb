"""Cache simulator: hand-computed cases, invariants, and identical counts to pycachesim."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwprune
from hwprune.cost.cachesim import (
    COUNTERS,
    CacheLevel,
    CacheSimulator,
    levels_of,
    to_pycachesim,
)
from hwprune.errors import InputError

pytest.importorskip("cachesim")   # pycachesim, a test dependency


PAIRS = [("LOAD_count", "loads"), ("STORE_count", "stores"), ("HIT_count", "hits"),
         ("MISS_count", "misses"), ("EVICT_count", "writebacks"), ("LOAD_byte", "load_bytes"),
         ("STORE_byte", "store_bytes"), ("HIT_byte", "hit_bytes"), ("MISS_byte", "miss_bytes")]


def assert_same_as_pycachesim(levels, addr, size, write):
    ours = CacheSimulator(levels, refresh_on_store=False).run(addr, size, write).table()
    ours = ours.set_index(["level", "structure"])
    peer, caches = to_pycachesim(levels)
    for a, s, w in zip(addr.tolist(), np.broadcast_to(size, addr.shape).tolist(),
                       np.broadcast_to(write, addr.shape).tolist()):
        (peer.store if w else peer.load)(a, s)
    for cache in caches:
        stats = cache.stats()
        row = ours.loc[(cache.name, "all")]
        assert {k: stats[k] for k, _ in PAIRS} == {k: int(row[m]) for k, m in PAIRS}, cache.name


HIERARCHY = [CacheLevel("L1", 4, 2, 16), CacheLevel("L2", 8, 4, 32), CacheLevel("L3", 16, 4, 64)]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**20), n=st.integers(1, 3000), span=st.sampled_from([512, 4096, 1 << 16]),
       write_share=st.floats(0, 0.6))
def test_random_traces_match_pycachesim(seed, n, span, write_share):
    rng = np.random.default_rng(seed)
    addr = rng.integers(0, span, n)
    size = rng.choice([1, 2, 4, 8, 16, 40], n)
    write = rng.random(n) < write_share
    assert_same_as_pycachesim(HIERARCHY, addr, size, write)


def test_core_i7_hierarchy_matches_pycachesim_on_a_strided_trace():
    levels = levels_of(hwprune.device("core-i7"))
    addr = np.concatenate([np.arange(0, 1 << 20, 68), np.arange(0, 1 << 20, 4096)])
    write = (np.arange(addr.size) % 5) == 0
    assert_same_as_pycachesim(levels, addr, 4, write)


def test_hand_computed_direct_mapped_case():
    # One level, 2 sets x 1 way x 16 B. Lines 0 and 2 share set 0.
    sim = CacheSimulator([CacheLevel("L1", 2, 1, 16)])
    sim.run(np.array([0, 4, 32, 0, 16, 20]), 4, np.array([False, True, False, False, False, False]))
    row = sim.table().set_index(["level", "structure"]).loc[("L1", "all")]
    # 0 miss; 4 store hit (dirty); 32 miss evicts dirty line 0 (write-back); 0 miss evicts
    # line 2; 16 miss (set 1, empty); 20 hit.
    assert (row["loads"], row["stores"], row["hits"], row["misses"]) == (5, 1, 1, 4)
    assert (row["evictions"], row["writebacks"]) == (2, 1)
    memory = sim.table().set_index(["level", "structure"]).loc[("memory", "all")]
    assert (memory["loads"], memory["stores"]) == (4, 1)


def test_chunks_equal_one_run_and_structures_add_up():
    rng = np.random.default_rng(7)
    addr = rng.integers(0, 1 << 15, 5000)
    struct = rng.integers(0, 3, 5000)
    write = rng.random(5000) < 0.2
    whole = CacheSimulator(HIERARCHY, ("w", "x", "y")).run(addr, 4, write, struct).table()
    chunked = CacheSimulator(HIERARCHY, ("w", "x", "y"))
    for lo in range(0, 5000, 777):
        chunked.run(addr[lo:lo + 777], 4, write[lo:lo + 777], struct[lo:lo + 777])
    assert whole.equals(chunked.table())
    for level, group in whole.groupby("level"):
        parts = group[group["structure"] != "all"][list(COUNTERS)].sum()
        total = group[group["structure"] == "all"][list(COUNTERS)].iloc[0]
        assert (parts == total).all(), level
        if level != "memory":
            assert total["hits"] + total["misses"] >= total["loads"]


def test_bad_input():
    with pytest.raises(InputError, match="power of two"):
        CacheLevel("L1", 4, 2, 48)
    with pytest.raises(InputError, match="no cache levels"):
        levels_of(hwprune.device("cortex-m4"))
    sim = CacheSimulator(HIERARCHY)
    with pytest.raises(InputError, match="structure ids"):
        sim.run(np.array([0]), 4, False, 3)
    with pytest.raises(InputError, match=r"in \[0, 2\^48 - 1\)"):
        sim.run(np.array([-8]))
    with pytest.raises(InputError, match=r"in \[0, 2\^48 - 1\)"):
        sim.run(np.array([1 << 50]))
    with pytest.raises(InputError, match="end of 281474976710656"):
        sim.run(np.array([(1 << 48) - 4]), 4)                 # ends at 2^48
    sim.run(np.array([(1 << 48) - 5]), 4)                      # ends at 2^48 - 1: accepted


@pytest.mark.parametrize("n", [1, 40, 5000])    # a pass first (short chunks) or in-loop checks
@pytest.mark.parametrize("bad", [(-8, 4, 0), ((1 << 48) - 4, 4, 0), (0, 0, 0), (0, -5, 0),
                                 (0, 4, 3), (8, 4, -1), (2**63 - 1, 4, 0), (0, 2**63 - 1, 0)])
def test_a_bad_access_is_named_and_leaves_the_simulator_as_it_was(n, bad):
    rng = np.random.default_rng(1)
    sim = CacheSimulator(HIERARCHY, ("a", "b", "c"))
    sim.run(rng.integers(0, 4096, 3000), 4, rng.random(3000) < 0.3, rng.integers(0, 3, 3000))
    before = sim.table()
    addr, size, struct = rng.integers(0, 4096, n), np.full(n, 4), rng.integers(0, 3, n)
    k = int(rng.integers(0, n))
    addr[k], size[k], struct[k] = bad
    with pytest.raises(InputError, match=rf"trace access {k} \(address {bad[0]}, size {bad[1]}"):
        sim.run(addr, size, rng.random(n) < 0.3, struct)
    assert sim.table().equals(before)
    # and it goes on exactly as if the bad chunk had never been offered
    twin = CacheSimulator(HIERARCHY, ("a", "b", "c"))
    rng = np.random.default_rng(1)
    twin.run(rng.integers(0, 4096, 3000), 4, rng.random(3000) < 0.3, rng.integers(0, 3, 3000))
    for s in (sim, twin):
        s.run(np.arange(0, 8192, 4), 4, False, 1)
    assert sim.table().equals(twin.table())


def test_long_and_huge_accesses_are_safe():
    """Regression: a request covering many lines once overflowed the work stack."""
    sim = CacheSimulator(HIERARCHY)
    sim.run(np.array([0, 4096]), np.array([64 * 300, 100_000]))
    row = sim.table().set_index(["level", "structure"]).loc[("L1", "all")]
    # 16-byte lines: 64 * 300 / 16 = 1,200 lines, then 100,000 / 16 = 6,250 lines.
    assert row["loads"] == 2 and row["hits"] + row["misses"] == 1_200 + 6_250
    with pytest.raises(InputError, match=r"2\^48"):
        sim.run(np.array([2**62, 2**63 - 1]), 4)


class ReferenceLRU:
    """A plain-Python write-back, write-allocate LRU hierarchy (lists, MRU first), with
    the same counting rules as the simulator; ``refresh_on_store`` as in hwprune."""

    def __init__(self, levels, refresh_on_store):
        self.levels = levels
        self.refresh = refresh_on_store
        self.sets = [[[] for _ in range(lv.sets)] for lv in levels]   # [line, dirty]
        self.c = [dict(loads=0, stores=0, hits=0, misses=0, evictions=0, writebacks=0)
                  for _ in levels]
        self.memory = [0, 0]

    def _lines(self, lv, addr, n):
        b = self.levels[lv].line_bytes
        return range(addr // b, (addr + n - 1) // b + 1)

    def load(self, lv, addr, n):
        if lv == len(self.levels):
            self.memory[0] += 1
            return
        self.c[lv]["loads"] += 1
        for line in self._lines(lv, addr, n):
            self._load_line(lv, line)

    def _load_line(self, lv, line):
        ways = self.sets[lv][line % self.levels[lv].sets]
        for i, entry in enumerate(ways):
            if entry[0] == line:
                self.c[lv]["hits"] += 1
                ways.insert(0, ways.pop(i))
                return
        self.c[lv]["misses"] += 1
        b = self.levels[lv].line_bytes
        self.load(lv + 1, line * b, b)
        ways.insert(0, [line, False])
        if len(ways) > self.levels[lv].ways:
            victim = ways.pop()
            self.c[lv]["evictions"] += 1
            if victim[1]:
                self.c[lv]["writebacks"] += 1
                self.store(lv + 1, victim[0] * b, b)

    def store(self, lv, addr, n):
        if lv == len(self.levels):
            self.memory[1] += 1
            return
        self.c[lv]["stores"] += 1
        for line in self._lines(lv, addr, n):
            ways = self.sets[lv][line % self.levels[lv].sets]
            hit = [i for i, e in enumerate(ways) if e[0] == line]
            if hit:
                ways[hit[0]][1] = True
                if self.refresh:
                    ways.insert(0, ways.pop(hit[0]))
            else:
                self.c[lv]["loads"] += 1
                self._load_line(lv, line)
                ways[0][1] = True


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**20), n=st.integers(1, 2000), span=st.sampled_from([256, 2048, 1 << 14]),
       write_share=st.floats(0, 0.7), refresh=st.booleans(),
       hierarchy=st.sampled_from([
           HIERARCHY,
           [CacheLevel("L1", 3, 2, 16), CacheLevel("L2", 5, 3, 32)],        # not powers of two
           [CacheLevel("L1", 1, 4, 32), CacheLevel("L2", 4, 2, 32)],        # fully associative L1
       ]))
def test_both_lru_policies_match_a_python_reference(seed, n, span, write_share, refresh, hierarchy):
    rng = np.random.default_rng(seed)
    addr = rng.integers(0, span, n)
    size = rng.choice([1, 4, 8, 24], n)
    write = rng.random(n) < write_share
    ref = ReferenceLRU(hierarchy, refresh)
    for a, s, w in zip(addr.tolist(), size.tolist(), write.tolist()):
        (ref.store if w else ref.load)(0, a, s)
    ours = CacheSimulator(hierarchy, refresh_on_store=refresh).run(addr, size, write).table()
    ours = ours.set_index(["level", "structure"])
    for lv, counts in zip(hierarchy, ref.c):
        row = ours.loc[(lv.name, "all")]
        assert counts == {k: int(row[k]) for k in counts}, lv.name
    assert ref.memory == [int(ours.loc[("memory", "all"), "loads"]),
                          int(ours.loc[("memory", "all"), "stores"])]


def test_lru_switch_set_after_construction_is_followed():
    rng = np.random.default_rng(3)
    addr, write = rng.integers(0, 4096, 2000), rng.random(2000) < 0.5
    switched = CacheSimulator(HIERARCHY)
    switched.refresh_on_store = False
    built = CacheSimulator(HIERARCHY, refresh_on_store=False)
    assert switched.run(addr, 4, write).table().equals(built.run(addr, 4, write).table())
    assert not built.table().equals(CacheSimulator(HIERARCHY).run(addr, 4, write).table())


def test_a_hierarchy_too_large_to_simulate_is_refused_before_allocating(monkeypatch, tmp_path):
    """A valid profile with a 1 TiB cache level: an InputError naming the level, its size
    and the limit, not a 256 GiB allocation."""
    from hwprune.cost import cachesim
    from hwprune.hardware import load_profile

    text = (hwprune.hardware.builtin_profile_dir() / "core-i7.toml").read_text()
    text = text.replace("size_bytes = 8388608", "size_bytes = 1099511627776", 1)
    path = tmp_path / "huge.toml"
    path.write_text(text)
    dev = load_profile(path)
    with pytest.raises(InputError) as info:
        CacheSimulator(levels_of(dev))
    message = str(info.value)
    assert "'L3' (1099511627776 bytes" in message and str(cachesim.MAX_CACHE_LINES) in message
    assert "MAX_CACHE_LINES" in message
    # The limit counts every level together and names the one that passes it.
    levels = [CacheLevel("A", 8, 4, 64), CacheLevel("B", 16, 4, 64)]
    monkeypatch.setattr(cachesim, "MAX_CACHE_LINES", 32 + 64)
    CacheSimulator(levels)                                   # exactly at the limit
    monkeypatch.setattr(cachesim, "MAX_CACHE_LINES", 32 + 63)
    with pytest.raises(InputError, match="'B' .*32 of them taken by the levels inside it"):
        CacheSimulator(levels)
    assert cachesim.MAX_CACHE_LINES * cachesim.STATE_BYTES_PER_LINE <= 1 << 30


def test_the_cache_simulator_and_cpu_latency_say_the_same_for_a_huge_level(tmp_path):
    text = (hwprune.hardware.builtin_profile_dir() / "core-i7.toml").read_text()
    path = tmp_path / "huge.toml"
    path.write_text(text.replace("size_bytes = 8388608", "size_bytes = 1099511627776", 1))
    from hwprune.cli import main
    assert main(["cachesim", "lenet-300-100", "--layer", "ip1", "--device", str(path),
                 "--scheme", "fine", "--density", "0.5"]) == 2
    # The cpu model simulates the gathered loads of the sparse kernels (the dense GEMV is
    # priced from bandwidths alone), so the same refusal comes from the same level there.
    with pytest.raises(InputError, match="too large to simulate"):
        hwprune.api.latency("lenet-300-100", str(path), "fine", 0.5)
