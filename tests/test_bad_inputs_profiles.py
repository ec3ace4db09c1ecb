"""Bad and odd device profiles, profile directories and cache geometries (issue 18), one
table row each.

Every case writes what it needs under ``tmp_path`` (and may patch the environment or
an ``os`` call, since these tests run as root, where permission bits do not bite), then
runs ``hwprune.cli.main(argv)``: either exit 2 with exactly one stderr line
``hwprune: error: ...`` containing a phrase, or exit 0 with output that a check accepts.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from hwprune.cli import main
from hwprune.hardware import builtin_profile_dir

LONG = "a" * 300            # longer than NAME_MAX (255): ENAMETOOLONG

TOY = """\
id = "toy"
name = "Toy CPU"
class = "cpu"
clock_hz = 1e9

[compute]
units = 1
simd_lanes = 4
simd_element_bits = 32
macs_per_unit_per_cycle = 4
mac_energy_pj = 1.0

[[memory]]
name = "L1"
kind = "cache"
size_bytes = 32768
line_bytes = 64
word_bytes = 4
associativity = 8
latency_cycles = 4
read_energy_pj = 10.0
write_energy_pj = 10.0
bandwidth_bytes_per_cycle = 64

[[memory]]
name = "DRAM"
kind = "dram"
size_bytes = 1073741824
line_bytes = 64
word_bytes = 4
latency_cycles = 200
read_energy_pj = 640.0
write_energy_pj = 640.0
bandwidth_gb_s = 20
"""


def toy(tmp: Path, *edits: tuple[str, str], name: str = "toy.toml") -> Path:
    """The toy profile with ``(old, new)`` edits, written to ``tmp/name``."""
    text = TOY
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp / name
    path.write_text(text)
    return path


def refuse(monkeypatch, name: str, under: Path, errno: int = 13,
           text: str = "Permission denied") -> None:
    """Make ``os.<name>`` fail for paths under ``under`` (root ignores permission bits)."""
    real = getattr(os, name)

    def failing(path=".", *args, **kwargs):
        if str(path).startswith(str(under)):
            raise OSError(errno, text, str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, failing)


def energy_adds_up(out: str) -> None:
    """The energy table's total is the sum of its level columns and compute."""
    df = pd.read_csv(io.StringIO(out))
    levels = [c for c in df.columns if c.endswith("_pj") and c not in
              ("energy_pj", "weights_pj", "index_pj", "inputs_pj", "outputs_pj", "compute_pj")]
    assert levels, df.columns
    total = df[levels].sum(axis=1) + df["compute_pj"]
    assert (abs(df["energy_pj"] - total) <= 1e-6 * df["energy_pj"]).all()
    assert (df["energy_pj"] > df[levels].max(axis=1)).all()


# Each case: (tmp_path, monkeypatch) -> argv, and what to expect: a phrase of the one-line
# error (exit 2) or a check of stdout (exit 0).
Case = tuple[str, Callable[[Path, pytest.MonkeyPatch], list[str]], str | Callable[[str], None]]

CASES: list[Case] = [
    # 1. level names that collide with result columns
    ("level-named-Energy", lambda t, m: ["energy", "lenet-300-100", "--device",
                                         str(toy(t, ('name = "DRAM"', 'name = "Energy"')))],
     "energy_pj would overwrite"),
    ("level-named-Weights", lambda t, m: ["device", str(toy(t, ('name = "DRAM"',
                                                                'name = "Weights"')))],
     "weights_pj would overwrite"),
    ("level-named-compute", lambda t, m: ["device", str(toy(t, ('name = "L1"',
                                                                'name = "compute"')))],
     "compute_pj would overwrite"),
    ("level-named-INDEX", lambda t, m: ["device", str(toy(t, ('name = "L1"', 'name = "INDEX"')))],
     "may not be any of (ignoring case): compute, energy, index"),
    ("level-named-memory", lambda t, m: ["device", str(toy(t, ('name = "DRAM"',
                                                               'name = "memory"')))],
     "calls main memory 'memory'"),
    ("levels-L1-and-l1", lambda t, m: ["device", str(toy(t, ('name = "DRAM"', 'name = "l1"')))],
     "unique, ignoring case"),
    ("level-name-with-newline", lambda t, m: ["device", str(toy(t, ('name = "L1"',
                                                                    'name = "L1\\nx"')))],
     "printable"),
    ("level-name-near-a-reserved-one-is-fine",
     lambda t, m: ["energy", "lenet-300-100", "--format", "csv", "--device",
                   str(toy(t, ('name = "L1"', 'name = "Weights2"'),
                           ('name = "DRAM"', 'name = "energy_dram"')))],
     energy_adds_up),
    ("toy-profile-energy-adds-up",
     lambda t, m: ["energy", "lenet-300-100", "--format", "csv", "--device", str(toy(t))],
     energy_adds_up),
    # 2. profile directories that cannot be read
    ("profiles-dir-unlistable", lambda t, m: (toy(t), refuse(m, "scandir", t),
                                              ["devices", "--profiles", str(t)])[-1],
     "cannot be listed: Permission denied"),
    ("profiles-dir-no-search-permission", lambda t, m: (refuse(m, "stat", t / "d"),
                                                        ["devices", "--profiles", str(t / "d")])[-1],
     "cannot be read: Permission denied"),
    ("profiles-dir-name-too-long", lambda t, m: ["devices", "--profiles", str(t / LONG)],
     "cannot be read: File name too long"),
    ("profiles-dir-is-a-file", lambda t, m: ["devices", "--profiles", str(toy(t))],
     "is not a directory"),
    ("profiles-dir-missing", lambda t, m: ["devices", "--profiles", str(t / "nope")],
     "does not exist"),
    ("profiles-dir-for-device", lambda t, m: (toy(t), refuse(m, "scandir", t),
                                              ["device", "toy", "--profiles", str(t)])[-1],
     "cannot be listed"),
    ("env-dir-unlistable", lambda t, m: (toy(t), refuse(m, "scandir", t),
                                         m.setenv("HWPRUNE_PROFILES", str(t)), ["devices"])[-1],
     "(from $HWPRUNE_PROFILES) cannot be listed"),
    ("env-dir-name-too-long", lambda t, m: (m.setenv("HWPRUNE_PROFILES", str(t / LONG)),
                                            ["devices"])[-1],
     "File name too long"),
    ("env-dir-is-a-file", lambda t, m: (m.setenv("HWPRUNE_PROFILES", str(toy(t))),
                                        ["devices"])[-1],
     "(from $HWPRUNE_PROFILES) is not a directory"),
    ("profiles-dir-works", lambda t, m: (toy(t), ["devices", "--profiles", str(t),
                                                  "--format", "csv"])[-1],
     lambda out: "\ntoy," in out),
    # 3. non-regular files, huge files, long names, untraversable directories
    ("device-dev-zero", lambda t, m: ["device", "/dev/zero"], "is a character device"),
    ("device-dev-null", lambda t, m: ["device", "/dev/null"], "is a character device"),
    ("device-fifo", lambda t, m: (os.mkfifo(t / "p.toml"), ["device", str(t / "p.toml")])[-1],
     "is a FIFO (named pipe), not a regular file"),
    ("fifo-in-profiles-dir", lambda t, m: (toy(t), os.mkfifo(t / "x.toml"),
                                           ["devices", "--profiles", str(t)])[-1],
     "x.toml: is a FIFO"),
    ("directory-named-toml-in-profiles-dir", lambda t, m: ((t / "d.toml").mkdir(),
                                                           ["devices", "--profiles", str(t)])[-1],
     "d.toml: is a directory, not a regular file"),
    ("device-is-a-directory", lambda t, m: ["device", str(t) + "/"], "is a directory"),
    ("device-file-over-1-MiB", lambda t, m: ["device", str(toy(t, ("[compute]", "#" * (1 << 20)
                                                                    + "\n[compute]")))],
     "larger than 1048576 bytes (1 MiB)"),
    ("device-path-too-long", lambda t, m: ["device", str(t / LONG) + ".toml"],
     "cannot be read: File name too long"),
    ("device-bare-name-too-long", lambda t, m: ["device", LONG], "unknown device"),
    ("device-dir-without-search-permission",
     lambda t, m: (toy(t), refuse(m, "stat", t), ["device", str(t / "toy.toml")])[-1],
     "cannot be read: Permission denied"),
    ("device-open-refused", lambda t, m: (p := toy(t), refuse(m, "open", t),
                                          ["device", str(p)])[-1],
     "cannot be read: Permission denied"),
    ("device-not-utf8", lambda t, m: ((t / "b.toml").write_bytes(b"id = \"\xff\"\n"),
                                      ["device", str(t / "b.toml")])[-1],
     "not UTF-8"),
    ("device-nested-too-deep", lambda t, m: ((t / "n.toml").write_text("x = " + "[" * 50000),
                                             ["device", str(t / "n.toml")])[-1],
     "nests too deeply to be a device profile"),
    # 4. physically sensible bounds
    ("mac-energy-1e-300", lambda t, m: ["energy", "lenet-300-100", "--device",
                                        str(toy(t, ("mac_energy_pj = 1.0",
                                                    "mac_energy_pj = 1e-300")))],
     "compute.mac_energy_pj: 1e-300 is outside the accepted range 1e-06 ... 1e+06"),
    ("read-energy-1e300", lambda t, m: ["device", str(toy(t, ("read_energy_pj = 640.0",
                                                              "read_energy_pj = 1e300")))],
     "memory[1] (DRAM).read_energy_pj: 1e+300 is outside"),
    ("clock-1e12", lambda t, m: ["device", str(toy(t, ("clock_hz = 1e9", "clock_hz = 1e12")))],
     "100 GHz"),
    ("clock-1-hz", lambda t, m: ["device", str(toy(t, ("clock_hz = 1e9", "clock_hz = 1")))],
     "1 kHz"),
    ("size-2-TiB", lambda t, m: ["device", str(toy(t, ("size_bytes = 1073741824",
                                                        "size_bytes = 2199023255552")))],
     "at most 1 TiB"),
    ("bandwidth-1e9-GB-s", lambda t, m: ["device", str(toy(t, ("bandwidth_gb_s = 20",
                                                               "bandwidth_gb_s = 1e9")))],
     "1 PB/s"),
    ("latency-cycles-1e12", lambda t, m: ["device", str(toy(t, ("latency_cycles = 200",
                                                                "latency_cycles = 1e12")))],
     "memory[1] (DRAM).latency_cycles"),
    ("units-1e300", lambda t, m: ["device", str(toy(t, ("units = 1", "units = 1e300")))],
     "compute.units"),
    ("latency-key-1e300", lambda t, m: ["device", str(toy(t, ("[compute]",
                                                              "[latency]\nrow_cycles = 1e300\n"
                                                              "[compute]")))],
     "latency.row_cycles: 1e+300 is outside"),
    ("nan-energy", lambda t, m: ["device", str(toy(t, ("read_energy_pj = 10.0",
                                                       "read_energy_pj = nan")))],
     "a number > 0, got nan"),
    # 5. line sizes checked at load, so energy, latency and cachesim agree
    ("line-bytes-3-energy", lambda t, m: ["energy", "lenet-300-100", "--device",
                                          str(toy(t, ("line_bytes = 64\nword_bytes = 4\nassoc",
                                                      "line_bytes = 3\nword_bytes = 1\nassoc"),
                                                  ("size_bytes = 32768", "size_bytes = 24576")))],
     "memory[0] (L1).line_bytes: must be a power of two"),
    ("line-bytes-3-cachesim", lambda t, m: ["cachesim", "lenet-300-100", "--layer", "ip1",
                                            "--scheme", "fine", "--density", "0.5", "--device",
                                            str(toy(t, ("line_bytes = 64\nword_bytes = 4\nassoc",
                                                        "line_bytes = 3\nword_bytes = 1\nassoc"),
                                                    ("size_bytes = 32768", "size_bytes = 24576")))],
     "must be a power of two"),
    ("line-bytes-96-dram", lambda t, m: ["device", str(toy(t, ("line_bytes = 64\nword_bytes = 4"
                                                               "\nlatency_cycles = 200",
                                                               "line_bytes = 96\nword_bytes = 4"
                                                               "\nlatency_cycles = 200")))],
     "memory[1] (DRAM).line_bytes: must be a power of two"),
    # 6. a valid profile whose cache is too large to simulate
    ("one-TiB-cache-loads", lambda t, m: ["device", "--format", "csv",
                                          str(toy(t, ("size_bytes = 32768",
                                                      "size_bytes = 1099511627776")))],
     lambda out: "memory.L1.size_bytes,1099511627776" in out),
    ("one-TiB-cache-cachesim", lambda t, m: ["cachesim", "lenet-300-100", "--layer", "ip1",
                                             "--scheme", "fine", "--density", "0.5", "--device",
                                             str(toy(t, ("size_bytes = 32768",
                                                         "size_bytes = 1099511627776")))],
     "cache level 'L1' (1099511627776 bytes: 17179869184 lines of 64 bytes) is too large to "
     "simulate"),
    ("built-in-core-i7-cachesim-works", lambda t, m: ["cachesim", "lenet-300-100", "--layer",
                                                      "ip3", "--scheme", "fine", "--density",
                                                      "0.5", "--device", "core-i7",
                                                      "--format", "csv"],
     lambda out: "L3,all" in out and "memory,all" in out),
]


@pytest.mark.parametrize("make, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_profile_input(tmp_path, monkeypatch, capsys, make, expected):
    monkeypatch.delenv("HWPRUNE_PROFILES", raising=False)
    argv = make(tmp_path, monkeypatch)
    status = main(argv)
    out, err = capsys.readouterr()
    if callable(expected):
        assert status == 0, err
        result = expected(out)
        assert result is None or result
        return
    lines = err.strip().splitlines()
    assert status == 2, (status, err)
    assert len(lines) == 1 and lines[0].startswith("hwprune: error: "), err
    assert expected in lines[0], lines[0]


def test_every_builtin_profile_is_within_the_bounds():
    """The bounds are wide enough for the built-in devices (they load, and the energy
    table of each has every level's columns)."""
    from hwprune.hardware.loader import load_profile
    for path in sorted(builtin_profile_dir().glob("*.toml")):
        load_profile(path)
