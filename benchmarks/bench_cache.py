"""Cache-simulator speed: hwprune beside pycachesim on the core-i7 hierarchy, one run.

Traces:
* streaming: 10 million 4-byte loads at consecutive addresses;
* CSR matvec: the exact access trace of hwprune's CSR kernel on a 4096 x 9216 matrix
  (AlexNet fc6) at 10% density (about 11.3 million accesses, 4096 of them stores).

hwprune is fed numpy arrays (the CSR trace in the generator's chunks). pycachesim is
fed its fastest bulk calls, built before the clock starts: ``load(list)`` for the
stream (also timed from a numpy array), ``loadstore([(loads, stores), ...])`` with one
pair per matrix row for the CSR trace. hwprune runs with ``refresh_on_store=False`` so
that both simulate the same policy, and the script checks that every count agrees.
Times are medians of ``--repeats`` rounds on fresh simulators; in each round every
simulator runs once, in turn.

Then, hwprune alone: nanoseconds per access by kind of access, on 11.3 M-access traces
(the hint path, gathers inside L1, gathers inside L2, the CSR trace in one chunk).

Run:  python benchmarks/bench_cache.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import hwprune
from hwprune.cost import traces as T
from hwprune.cost.cachesim import CacheSimulator, levels_of, to_pycachesim
from hwprune.sparse import formats as F

PAIRS = [("LOAD_count", "loads"), ("STORE_count", "stores"), ("HIT_count", "hits"),
         ("MISS_count", "misses"), ("EVICT_count", "writebacks")]


def median_time(fn, repeats):
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def same_counts(ours: CacheSimulator, caches) -> bool:
    table = ours.table().set_index(["level", "structure"])
    return all(cache.stats()[k] == int(table.loc[(cache.name, "all"), m])
               for cache in caches for k, m in PAIRS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    levels = levels_of(hwprune.device("core-i7"))
    CacheSimulator(levels).run(np.arange(1000, dtype=np.int64) * 4)    # compile / load

    stream = np.arange(10_000_000, dtype=np.int64) * 4
    stream_list = stream.tolist()
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((4096, 9216)).astype(np.float32)
    matrix = F.CSRMatrix.from_dense(weights, rng.random(weights.shape) < 0.1)
    chunks = list(T.matvec_trace(matrix))
    addr = np.concatenate([c.addr for c in chunks])
    write = np.concatenate([c.is_write for c in chunks])
    stores = np.flatnonzero(write)
    pairs, lo = [], 0
    for s in stores.tolist():
        pairs.append((addr[lo:s].tolist(), [int(addr[s])]))
        lo = s + 1

    def ours_stream():
        return CacheSimulator(levels, refresh_on_store=False).run(stream)

    def ours_csr():
        sim = CacheSimulator(levels, T.STRUCTURES, refresh_on_store=False)
        for c in chunks:
            sim.run(c.addr, c.size, c.is_write, c.struct)
        return sim

    def peer(feed):
        def run():
            sim, caches = to_pycachesim(levels)
            feed(sim)
            return caches
        return run

    rows = []
    for trace, n, ours_fn, peer_runs in [
        ("streaming 10M loads", stream.size, ours_stream,
         [("pycachesim, list", peer(lambda s: s.load(stream_list, length=4))),
          ("pycachesim, numpy array", peer(lambda s: s.load(stream, length=4)))]),
        ("CSR matvec 4096x9216 @10%", addr.size, ours_csr,
         [("pycachesim, loadstore lists", peer(lambda s: s.loadstore(pairs, length=4)))]),
    ]:
        # The simulators take turns, one run each per round, so that a slow spell of
        # the machine falls on all of them.
        runs = [("hwprune, numpy", ours_fn)] + peer_runs
        times = {label: [] for label, _ in runs}
        results = {}
        for _ in range(args.repeats):
            for label, fn in runs:
                t, results[label] = median_time(fn, 1)
                times[label].append(t)
        sim = results["hwprune, numpy"]
        for label, _ in runs:
            check = "" if label == "hwprune, numpy" else (
                "identical" if same_counts(sim, results[label]) else "DIFFERENT")
            rows.append((trace, label, statistics.median(times[label]), n, check))
    print(f"{'trace':28} {'simulator':30} {'seconds':>8} {'M acc/s':>8} {'vs hwprune':>10}  counts")
    base = {}
    for trace, label, t, n, check in rows:
        base.setdefault(trace, t)
        print(f"{trace:28} {label:30} {t:8.3f} {n / t / 1e6:8.1f} {base[trace] / t:9.2f}x  {check}")

    struct = np.concatenate([c.struct for c in chunks])
    n = addr.size
    kinds = [
        ("one line per structure, repeated (hint path)", np.arange(n, dtype=np.int64) % 16 * 4, 0),
        ("random gathers inside L1", rng.integers(0, 4096, n).astype(np.int64) * 4, 0),
        ("random gathers inside L2 (L1 misses)", rng.integers(0, 32768, n).astype(np.int64) * 4, 0),
        ("CSR trace, one chunk", addr, struct),
    ]
    print(f"\n{'hwprune, kind of access':48} {'ns/access':>9}")
    for label, a, s in kinds:
        w = write if label.startswith("CSR") else False
        t, _ = median_time(lambda: CacheSimulator(levels, T.STRUCTURES, refresh_on_store=False)
                           .run(a, 4, w, s), args.repeats)
        print(f"{label:48} {t * 1e9 / n:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
