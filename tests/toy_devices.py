"""A two-level toy device profile (register file and DRAM) for hand-counted tests."""

from __future__ import annotations

import hwprune


def two_level_toy(tmp_path, rf_bytes: int, holds: str | None = None, extra: str = ""):
    """A register file of ``rf_bytes`` and DRAM; 1 pJ vs 100 pJ per 4-byte word, MAC
    0.5 pJ, 32-bit elements, one unit. ``holds`` (a TOML list) and ``extra`` (more keys)
    go into the register file's table."""
    name = f"toy{rf_bytes}" + ("-bypass" if holds else "")
    rf_keys = (f"holds = {holds}\n" if holds else "") + extra
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""\
id = "{name}"
name = "two-level toy"
class = "mcu"
clock_hz = 1e8
[compute]
units = 1
simd_lanes = 1
simd_element_bits = 32
macs_per_unit_per_cycle = 1
mac_energy_pj = 0.5
[[memory]]
name = "RF"
kind = "register_file"
size_bytes = {rf_bytes}
line_bytes = 4
word_bytes = 4
latency_cycles = 0
read_energy_pj = 1.0
write_energy_pj = 1.0
bandwidth_bytes_per_cycle = 12
{rf_keys}
[[memory]]
name = "DRAM"
kind = "dram"
size_bytes = 1048576
line_bytes = 4
word_bytes = 4
latency_cycles = 10
read_energy_pj = 100.0
write_energy_pj = 100.0
bandwidth_bytes_per_cycle = 4
""")
    return hwprune.device(str(path))
