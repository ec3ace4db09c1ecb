"""Fuzz the device-profile loader with mutated TOML documents (issue 18).

Each document starts from a built-in profile parsed with ``tomllib`` and takes a few
mutations: keys dropped, values replaced by odd ones (huge, negative, zero, NaN, inf,
tiny, booleans, odd strings, lists, tables: wrong types and wrong nesting), numbers
scaled by powers of ten or two, unknown keys added, memory levels dropped, duplicated
or swapped, level names set to reserved or colliding names, line sizes set to random
integers; now and then the serialized text itself is cut or spliced. Every document
must either load and then work, or be refused with an ``InputError``:

* :func:`hwprune.hardware.loader.load_profile` returns a profile or raises
  ``InputError`` with a one-line message; any other exception is a failure;
* a loaded profile prices ``lenet-300-100`` with :func:`hwprune.energy` (finite,
  non-negative energies whose total is the sum of its level columns and compute), and,
  for an accelerator or a profile with a ``[latency]`` table,
  :func:`hwprune.api.latency` returns finite positive cycles or raises an
  ``InputError`` (a model names a key the table lacks; a cpu profile without caches);
* nothing hangs (hypothesis ``deadline``).

The cpu latency model runs the cache simulator, whose fast loop numba compiles once
per cache geometry (seconds). A geometry not compiled yet in this process is checked
by building the simulator (the loader's line rules and the state limit) instead of
running it, unless ``--full`` is given.

    python benchmarks/fuzz_profiles.py                # 2,000 examples
    python benchmarks/fuzz_profiles.py --examples 20000 --seed 3 --full

The test suite runs the same property with a small budget
(``tests/test_profiles.py::test_fuzz_profiles_load_and_work_or_are_rejected``).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

from hypothesis import strategies as st

import hwprune
import hwprune.api
from hwprune.cost import cachesim
from hwprune.errors import InputError
from hwprune.hardware import builtin_profile_dir
from hwprune.hardware.loader import load_profile
from hwprune.hardware.profile import RESERVED_LEVEL_NAMES

BASES = {path.stem: tomllib.loads(path.read_text())
         for path in sorted(builtin_profile_dir().glob("*.toml"))}

# --- values and mutations ---------------------------------------------------------------

ODD_STRINGS = ["", " ", "L1\nL2", "Energy", "energy", "WEIGHTS", "compute", "memory", "l1",
               "L1", "DRAM", "x" * 40, "\u00e9\u4e2d\U0001f600", "\t", "$x$", "=cmd|' /C calc'!A0",
               "cache", "dram", "noc", "flash", "cpu", "MAC-equivalents", "pJ", "csr", "gate"]
NUMBERS = [0, -1, 1, 2, 3, 7, 48, 2**20 + 1, 2**40, 2**41, 2**63 - 1, -2**63, 0.0, -0.0,
           0.5, 1.5, 1e-300, 5e-324, 1e300, 1e-7, 1e7, 1e12, float("nan"), float("inf"),
           -float("inf")]

scalars = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(-2**63, 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["a", "name", "size_bytes", "x"]),
                                            inner, max_size=3)),
    max_leaves=6,
)


def _paths(doc, prefix=()):
    """Every (container, key) pair in a nested document."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for key, value in list(items):
        yield doc, key
        if isinstance(value, (dict, list)):
            yield from _paths(value, prefix + (key,))


@st.composite
def documents(draw):
    """A profile document (a dict), or now and then a raw text (str)."""
    doc = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(0, 4))):
        places = list(_paths(doc))
        what = draw(st.sampled_from(["drop", "replace", "scale", "add", "level", "name",
                                     "line", "nest"]))
        container, key = draw(st.sampled_from(places))
        if what == "drop" and isinstance(container, dict):
            del container[key]
        elif what == "replace":
            container[key] = draw(values)
        elif what == "scale" and isinstance(container[key], (int, float)) \
                and not isinstance(container[key], bool):
            factor = draw(st.sampled_from([10.0 ** k for k in (-300, -30, -9, -3, 3, 9, 30, 300)]
                                          + [2, 0.5, -1, 0, 1024, 3]))
            scaled = container[key] * factor
            container[key] = (int(scaled) if isinstance(container[key], int)
                              and math.isfinite(scaled) and float(scaled).is_integer()
                              else scaled)
        elif what == "add":
            table = draw(st.sampled_from([c for c, _ in places if isinstance(c, dict)] + [doc]))
            table[draw(st.sampled_from(["colour", "size_bytes", "sources", "memory", "latency",
                                        "name", "holds", "x.y", "operand_energy_pj",
                                        "sliding_window", "mapping", "fills", "psum_bits"]))] = \
                draw(values)
        elif what == "level" and isinstance(doc.get("memory"), list) and doc["memory"]:
            levels = doc["memory"]
            i, j = draw(st.integers(0, len(levels) - 1)), draw(st.integers(0, len(levels) - 1))
            action = draw(st.sampled_from(["dup", "del", "swap"]))
            if action == "dup":
                levels.insert(j, copy.deepcopy(levels[i]))
            elif action == "del":
                del levels[i]
            else:
                levels[i], levels[j] = levels[j], levels[i]
        elif what == "name" and isinstance(doc.get("memory"), list) and doc["memory"]:
            level = draw(st.sampled_from(doc["memory"]))
            if isinstance(level, dict):
                level["name"] = draw(st.sampled_from(
                    [*RESERVED_LEVEL_NAMES, "Energy", "Weights", "memory", "MEMORY", "l1", "L1",
                     "l2", "dram", "DRAM", "Rf", "Energy2", "x" * 32, "x" * 33]))
        elif what == "line" and isinstance(doc.get("memory"), list) and doc["memory"]:
            level = draw(st.sampled_from(doc["memory"]))
            if isinstance(level, dict):
                level[draw(st.sampled_from(["line_bytes", "size_bytes", "associativity",
                                            "word_bytes", "instances"]))] = \
                    draw(st.one_of(st.integers(0, 2**16), st.sampled_from([3, 6, 48, 96, 2**20,
                                                                           2**21, 2**40])))
        elif what == "nest":
            container[key] = draw(st.sampled_from([[container[key]], {"value": container[key]},
                                                   [[container[key]]]]))
    if draw(st.integers(0, 19)) == 0:       # one in twenty: damage the text itself
        text = dumps(doc)
        cut = draw(st.integers(0, len(text)))
        return text[:cut] + draw(st.sampled_from(["", "=", "[", "]]", "\n[[memory]]\n",
                                                  "\x00", "\"", "\n[compute]\n"]))
    return doc


# --- a small TOML writer (inline tables throughout) ----------------------------------------

def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = repr(v)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_string(str(k))} = {_value(x)}" for k, x in v.items()) + "}"
    return _string(str(v))                  # dates and the like do not occur here


def dumps(doc) -> str:
    """TOML text of a document: ``"key" = value`` lines, nested tables inline."""
    return "".join(f"{_string(str(k))} = {_value(v)}\n" for k, v in doc.items())


# --- the property -------------------------------------------------------------------------

def _compiled(dev) -> bool:
    """Whether the cpu latency model would run a cache geometry compiled already."""
    try:
        levels = cachesim.levels_of(dev)
        if sum(lv.sets * lv.ways for lv in levels) > 1 << 20:
            return False                     # up to 1 GiB of state: leave it to --full
        sim = cachesim.CacheSimulator(levels)
    except InputError:
        return True                          # refused before any compile: cheap to run
    return sim._geometry is None or sim._geometry + (True,) in cachesim._FAST_LOOPS


def check(doc, directory: str, full: bool = False) -> str:
    """``"accepted"``, ``"rejected"`` (at load) or ``"late"`` (loaded, then refused by a
    model with an InputError); raises AssertionError or the unexpected exception when
    hwprune breaks its promise on ``doc``."""
    path = Path(directory) / "fuzz.toml"
    path.write_text(doc if isinstance(doc, str) else dumps(doc), encoding="utf-8",
                    errors="surrogatepass")
    try:
        dev = load_profile(path)
    except InputError as exc:
        assert "\n" not in str(exc), repr(str(exc))
        return "rejected"
    outcome = "accepted"
    table = hwprune.energy("lenet-300-100", dev)
    pj = [c for c in table.columns if c.endswith("_pj")]
    assert table[pj].map(lambda x: math.isfinite(x) and x >= 0).all().all(), table[pj]
    level = [f"{n.lower()}_pj" for n in hwprune.api.level_columns(dev)]
    total = table[level].sum(axis=1) + table["compute_pj"]
    assert ((table["energy_pj"] - total).abs() <= 1e-9 * table["energy_pj"].abs() + 1e-12).all()
    assert table["energy_norm"].map(math.isfinite).all()
    if dev.latency or dev.device_class == "accelerator":
        if dev.device_class == "cpu" and not full and not _compiled(dev):
            return outcome
        try:
            lat = hwprune.api.latency("lenet-300-100", dev)
        except InputError as exc:
            assert "\n" not in str(exc), repr(str(exc))
            return "late"
        assert lat["cycles"].map(lambda x: math.isfinite(x) and x > 0).all(), lat["cycles"]
    return outcome


def warm_up() -> None:
    """Run each built-in profile once, so that their geometries are compiled."""
    for name in BASES:
        dev = hwprune.device(name)
        hwprune.energy("lenet-300-100", dev)
        if dev.latency or dev.device_class == "accelerator":
            hwprune.api.latency("lenet-300-100", dev)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true",
                        help="run the cpu latency model on every new cache geometry (compiles)")
    args = parser.parse_args(argv)
    from hypothesis import HealthCheck, given, seed, settings

    counts: Counter = Counter()
    failures: list[str] = []
    warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        @seed(args.seed)
        @settings(max_examples=args.examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(documents())
        def run(doc):
            try:
                counts[check(doc, tmp, args.full)] += 1
            except Exception as exc:       # noqa: BLE001  report every broken promise
                counts["failed"] += 1
                if len(failures) < 20:
                    failures.append(f"{type(exc).__name__}: {str(exc)[:300]}\n  "
                                    f"document: {str(doc)[:600]}")

        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
    print(f"{sum(counts.values())} documents in {seconds:.1f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for failure in failures:
        print("FAILED", failure)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
