"""Read and check device-profile TOML files.

A profile file looks like this (see ``hardware_profiles/*.toml`` at the top of the
repository, installed as ``hwprune/hardware_profiles/``, for the built-in ones and
``docs/device-profiles.md`` for every key)::

    id = "my-mcu"
    name = "Example MCU"
    class = "mcu"                 # mcu | cpu | gpu | accelerator
    clock_hz = 80e6
    energy_unit = "pJ"            # optional: pJ (default) | MAC-equivalents

    [sources]                     # one line per numeric key above
    clock_hz = "datasheet DS123, table 5"

    [compute]
    units = 1
    simd_lanes = 2
    simd_element_bits = 16
    macs_per_unit_per_cycle = 2
    mac_energy_pj = 10.0
    [compute.sources]
    units = "..."

    [[memory]]                    # innermost level first
    name = "SRAM"
    kind = "sram"
    size_bytes = 65536
    line_bytes = 4
    word_bytes = 4
    latency_cycles = 1
    read_energy_pj = 5.0
    write_energy_pj = 5.0
    bandwidth_bytes_per_cycle = 4   # or bandwidth_gb_s = 0.32 (all instances)
    [memory.sources]
    size_bytes = "..."

Every error names the file, the key and what is accepted.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from ..checks import file_kind, parse_format
from ..errors import InputError, ProfileError
from .profile import (
    ACTIVATION_FORMATS,
    BACKING_KINDS,
    DATAFLOWS,
    DEVICE_CLASSES,
    ENERGY_TABLE_COLUMNS,
    ENERGY_UNITS,
    FILL_CONVENTIONS,
    FRACTION_LATENCY_KEYS,
    LATENCY_KEYS,
    LEVEL_COLUMN_SUFFIXES,
    LOOP_DIMS,
    MAX_LEVEL_NAME_CHARS,
    MEMORY_KINDS,
    OPERANDS,
    RESERVED_LEVEL_NAMES,
    ZERO_HANDLING,
    ZERO_LATENCY_KEYS,
    ComputeUnits,
    DeviceProfile,
    MemoryLevel,
    SparsitySupport,
)

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

TOP_KEYS = {"id", "name", "class", "clock_hz", "description", "dataflow", "energy_unit", "fills", "sources",
            "compute", "memory", "sparsity", "latency", "stream_bandwidth",
            "gemv_bandwidth", "mapping"}
SPARSITY_KEYS = {"zero_weights", "zero_activations", "weight_format", "activation_format",
                 "index_bits", "structured", "structured_speedup", "structured_metadata_bits",
                 "channel_multiple", "sources"}
DEFAULT_DATAFLOW = {"accelerator": "row-stationary"}  # every other class: cache-tiling
TOP_NUMERIC = ("clock_hz",)
COMPUTE_REQUIRED = {
    "units": "int",
    "simd_lanes": "int",
    "simd_element_bits": "int",
    "macs_per_unit_per_cycle": "positive",
    "mac_energy_pj": "positive",
}
COMPUTE_OPTIONAL = {"array_rows": "int", "array_cols": "int", "psum_bits": "int"}
MEMORY_REQUIRED = {
    "line_bytes": "int",
    "word_bytes": "int",
    "latency_cycles": "nonnegative",
    "read_energy_pj": "positive",
}
MEMORY_OPTIONAL = {
    "size_bytes": "int",
    "instances": "int",
    "associativity": "int",
    "write_energy_pj": "positive",
    "bandwidth_bytes_per_cycle": "positive",
    "bandwidth_gb_s": "positive",
}
MEMORY_KEYS = {"name", "kind", "sources", "holds", "partition_bytes", "operand_energy_pj",
               "sliding_window", *MEMORY_REQUIRED, *MEMORY_OPTIONAL}

_ACCEPTS = {
    "int": "an integer >= 1",
    "positive": "a number > 0",
    "nonnegative": "a number >= 0",
}

MAX_PROFILE_BYTES = 1 << 20
"""Largest profile file read (1 MiB; the built-in ones are under 10 KiB)."""

KIB, MIB, GIB, TIB, PIB = (1 << 10), (1 << 20), (1 << 30), (1 << 40), (1 << 50)

# Physically sensible bounds, (low, high, unit and reason), by key; wide enough for any
# real device (docs/device-profiles.md gives the reasons). Keys of several tables share
# a bound by their name; ``latency.*`` keys are bounded in ``_parse_latency``.
ENERGY_BOUNDS = (1e-6, 1e6, "pJ (or MAC-equivalents) per access: 1 aJ ... 1 uJ")
BOUNDS: Mapping[str, tuple[float, float, str]] = MappingProxyType({
    "clock_hz": (1e3, 1e11, "Hz: 1 kHz ... 100 GHz"),
    "units": (1, MIB, "units (cores, SMs, PEs): at most 2^20"),
    "array_rows": (1, MIB, "PEs: at most 2^20"),
    "array_cols": (1, MIB, "PEs: at most 2^20"),
    "simd_lanes": (1, 1 << 16, "lanes: at most 65536"),
    "simd_element_bits": (1, 64, "bits: 1 (binary) ... 64 (fp64)"),
    "psum_bits": (1, 64, "bits: 1 ... 64"),
    "macs_per_unit_per_cycle": (1e-6, 1e6, "MACs per unit per cycle"),
    "mac_energy_pj": ENERGY_BOUNDS,
    "read_energy_pj": ENERGY_BOUNDS,
    "write_energy_pj": ENERGY_BOUNDS,
    "size_bytes": (1, TIB, "bytes per instance: at most 1 TiB (2^40)"),
    "instances": (1, MIB, "instances: at most 2^20"),
    "line_bytes": (1, MIB, "bytes: a power of two, at most 1 MiB (2^20)"),
    "associativity": (1, 1 << 16, "ways: at most 65536"),
    "latency_cycles": (0, 1e9, "cycles: at most 1e9"),
    "bandwidth_bytes_per_cycle": (1e-6, 1e6, "bytes per cycle per instance"),
    "bandwidth_gb_s": (1e-6, 1e6, "GB/s: 1 kB/s ... 1 PB/s"),
    "footprint_bytes": (1, PIB, "bytes: at most 1 PiB (2^50)"),
    "bytes_per_cycle": (1e-6, 1e6, "bytes per cycle"),
})
LATENCY_BOUNDS = (1e-9, 1e9, "in the key's unit (cycles, counts): at most 1e9, "
                  "and at least 1e-9 unless 0 is accepted")
MAX_CURVE_POINTS = 1024


class _Checker:
    """Type and range checks that raise :class:`ProfileError` naming file and key."""

    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, key: str, reason: str) -> ProfileError:
        return ProfileError(self.origin, key, reason)

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {type(value).__name__} {value!r}")
        return value

    def unknown(self, table: Mapping[str, Any], accepted: set[str], prefix: str) -> None:
        extra = sorted(set(table) - accepted, key=str)
        if extra:
            raise self.fail(
                prefix + str(extra[0]),
                "unknown key; accepted keys here are: " + ", ".join(sorted(accepted)),
            )

    def string(self, table: Mapping[str, Any], key: str, prefix: str,
               choices: tuple[str, ...] | None = None, required: bool = True) -> str | None:
        if key not in table:
            if required:
                raise self.fail(prefix + key, "missing key; it is required")
            return None
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(prefix + key, f"must be a non-empty string, got {value!r}")
        if not value.isprintable():
            raise self.fail(prefix + key, f"must be one line of printable text (no control "
                            f"characters), got {value!r}")
        if choices is not None and value not in choices:
            raise self.fail(prefix + key, f"{value!r} is not accepted; use one of: "
                            + ", ".join(choices))
        return value

    def number(self, table: Mapping[str, Any], key: str, kind: str, prefix: str,
               required: bool = True) -> float | int | None:
        if key not in table:
            if required:
                raise self.fail(prefix + key, f"missing key; it is required ({_ACCEPTS[kind]})")
            return None
        value = table[key]
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind == "int":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not (isinstance(value, int) and not isinstance(value, bool)) or value < 1:
                raise self.fail(prefix + key, f"must be {_ACCEPTS[kind]}, got {value!r}")
        else:
            if not is_number or not math.isfinite(value):
                raise self.fail(prefix + key, f"must be {_ACCEPTS[kind]}, got {value!r}")
            if (kind == "positive" and value <= 0) or (kind == "nonnegative" and value < 0):
                raise self.fail(prefix + key, f"must be {_ACCEPTS[kind]}, got {value!r}")
        if key in BOUNDS:
            self.bounded(value, prefix + key, *BOUNDS[key])
        return value

    def bounded(self, value: float, key: str, low: float, high: float, unit: str) -> None:
        """Refuse ``value`` outside [low, high] (physically sensible bounds)."""
        if not low <= value <= high:
            raise self.fail(key, f"{value!r} is outside the accepted range {low:g} ... "
                            f"{high:g} ({unit}); see docs/device-profiles.md")

    def sources(self, table: Mapping[str, Any], numeric_keys: set[str],
                prefix: str) -> dict[str, str]:
        if "sources" not in table:
            return {}
        src = self.table(table["sources"], prefix + "sources")
        out: dict[str, str] = {}
        for key, text in src.items():
            if key not in numeric_keys:
                raise self.fail(
                    f"{prefix}sources.{key}",
                    "names no numeric key of this table; sources can be given for: "
                    + ", ".join(sorted(numeric_keys)),
                )
            if not isinstance(text, str) or not text.strip():
                raise self.fail(f"{prefix}sources.{key}", "must be a non-empty string")
            out[key] = text.strip()
        return out


def parse_profile(data: Mapping[str, Any], origin: str) -> DeviceProfile:
    """Check a profile already parsed from TOML and build the :class:`DeviceProfile`.

    ``origin`` names where the data came from and appears in every error.
    """
    ck = _Checker(origin)
    if not isinstance(data, Mapping):
        raise ck.fail("", f"must be a table of keys, got {type(data).__name__}")
    ck.unknown(data, TOP_KEYS, "")
    dev_id = ck.string(data, "id", "")
    if not _ID_PATTERN.match(dev_id):
        raise ck.fail("id", f"{dev_id!r} is not accepted; use lower-case letters, digits, "
                      "'.', '_' and '-', starting with a letter or digit")
    name = ck.string(data, "name", "")
    device_class = ck.string(data, "class", "", DEVICE_CLASSES)
    description = ck.string(data, "description", "", required=False) or ""
    dataflow = (ck.string(data, "dataflow", "", DATAFLOWS, required=False)
                or DEFAULT_DATAFLOW.get(device_class, "cache-tiling"))
    clock_hz = float(ck.number(data, "clock_hz", "positive", ""))
    energy_unit = ck.string(data, "energy_unit", "", ENERGY_UNITS, required=False) or "pJ"
    fills = ck.string(data, "fills", "", FILL_CONVENTIONS, required=False) or "charged"
    top_sources = ck.sources(data, set(TOP_NUMERIC), "")

    compute = _parse_compute(ck, data)
    top_sources.update({f"compute.{k}": v for k, v in compute[1].items()})
    if energy_unit == "MAC-equivalents" and compute[0].mac_energy_pj != 1:
        raise ck.fail("compute.mac_energy_pj", f"is {compute[0].mac_energy_pj:g} but must be 1 "
                      "with energy_unit = \"MAC-equivalents\" (energies relative to one MAC); "
                      "divide every energy by it, or use energy_unit = \"pJ\"")

    if "memory" not in data:
        raise ck.fail("memory", "missing key; give at least one [[memory]] level, innermost first")
    levels_raw = data["memory"]
    if not isinstance(levels_raw, list) or not levels_raw:
        raise ck.fail("memory", "must be a non-empty array of tables ([[memory]] entries)")
    levels = tuple(
        _parse_level(ck, ck.table(raw, f"memory[{i}]"), i, clock_hz)
        for i, raw in enumerate(levels_raw)
    )
    _check_hierarchy(ck, levels, energy_unit)
    mapping_spatial, mapping_levels = _parse_mapping(ck, data, compute[0], levels)
    sparsity, sparsity_sources = _parse_sparsity(ck, data)
    top_sources.update({f"sparsity.{k}": v for k, v in sparsity_sources.items()})
    latency, latency_sources = _parse_latency(ck, data, device_class)
    top_sources.update({f"latency.{k}": v for k, v in latency_sources.items()})
    stream, stream_sources = _parse_stream_bandwidth(ck, data, device_class)
    top_sources.update({f"stream_bandwidth.{k}": v for k, v in stream_sources.items()})
    gemv, gemv_sources = _parse_stream_bandwidth(ck, data, device_class, "gemv_bandwidth")
    top_sources.update({f"gemv_bandwidth.{k}": v for k, v in gemv_sources.items()})

    return DeviceProfile(
        id=dev_id,
        name=name,
        device_class=device_class,
        clock_hz=clock_hz,
        compute=compute[0],
        memory=levels,
        sparsity=sparsity,
        dataflow=dataflow,
        description=description,
        origin=origin,
        sources=MappingProxyType(top_sources),
        latency=MappingProxyType(latency),
        stream_bandwidth=stream,
        gemv_bandwidth=gemv,
        energy_unit=energy_unit,
        fills=fills,
        mapping_spatial=mapping_spatial,
        mapping_levels=mapping_levels,
    )


def _parse_compute(ck: _Checker, data: Mapping[str, Any]) -> tuple[ComputeUnits, dict[str, str]]:
    if "compute" not in data:
        raise ck.fail("compute", "missing key; a [compute] table is required")
    table = ck.table(data["compute"], "compute")
    prefix = "compute."
    ck.unknown(table, {*COMPUTE_REQUIRED, *COMPUTE_OPTIONAL, "sources"}, prefix)
    values = {k: ck.number(table, k, kind, prefix) for k, kind in COMPUTE_REQUIRED.items()}
    values.update(
        {k: ck.number(table, k, kind, prefix, required=False) for k, kind in COMPUTE_OPTIONAL.items()}
    )
    rows, cols = values["array_rows"], values["array_cols"]
    if (rows is None) != (cols is None):
        raise ck.fail(prefix + ("array_cols" if cols is None else "array_rows"),
                      "array_rows and array_cols go together; give both or neither")
    if rows is not None and rows * cols != values["units"]:
        raise ck.fail(prefix + "units", f"is {values['units']} but the array is "
                      f"{rows} x {cols} = {rows * cols} PEs; they must agree")
    numeric = {k for k in values if values[k] is not None}
    sources = ck.sources(table, numeric, prefix)
    values["macs_per_unit_per_cycle"] = float(values["macs_per_unit_per_cycle"])
    values["mac_energy_pj"] = float(values["mac_energy_pj"])
    return ComputeUnits(**values), sources


def _dims(ck: _Checker, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(d, str) for d in value):
        raise ck.fail(key, f"must be a non-empty list of loop dimensions ({', '.join(LOOP_DIMS)}), "
                      f"got {value!r}")
    unknown = [d for d in value if d not in LOOP_DIMS]
    if unknown or len(set(value)) != len(value):
        raise ck.fail(key, f"{unknown[0]!r} is not a loop dimension; accepted: {', '.join(LOOP_DIMS)}"
                      if unknown else f"names a dimension twice: {value!r}")
    return tuple(d for d in LOOP_DIMS if d in value)


def _parse_mapping(ck: _Checker, data: Mapping[str, Any], compute: ComputeUnits,
                   levels: tuple[MemoryLevel, ...]):
    """``[mapping]``: ``spatial`` (per array axis, the dimensions it may unroll) and
    ``[mapping.levels]`` (per storage level, the dimensions it may iterate over)."""
    if "mapping" not in data:
        return (), ()
    table = ck.table(data["mapping"], "mapping")
    ck.unknown(table, {"spatial", "levels"}, "mapping.")
    spatial: tuple[tuple[str, ...], ...] = ()
    if "spatial" in table:
        raw = table["spatial"]
        axes = 2 if compute.array_rows is not None else 1
        what = "rows then columns of the PE array" if axes == 2 else "the cores or SMs"
        if not isinstance(raw, list) or len(raw) != axes:
            raise ck.fail("mapping.spatial", f"must be a list of {axes} list(s) of loop dimensions, "
                          f"one per axis ({what}), got {raw!r}")
        spatial = tuple(_dims(ck, axis, f"mapping.spatial[{i}]") for i, axis in enumerate(raw))
    loops: list[tuple[str, tuple[str, ...]]] = []
    if "levels" in table:
        raw = ck.table(table["levels"], "mapping.levels")
        storage = {lvl.name: lvl for lvl in levels if lvl.kind != "noc"}
        for name, dims in raw.items():
            if name not in storage:
                raise ck.fail(f"mapping.levels.{name}", "is not a storage level of this profile; "
                              "levels: " + ", ".join(storage))
            if name == levels[-1].name:
                raise ck.fail(f"mapping.levels.{name}", "is the outermost level, which holds the "
                              "whole layer; constrain the levels inside it")
            loops.append((name, _dims(ck, dims, f"mapping.levels.{name}")))
    return spatial, tuple(loops)


def _parse_sparsity(ck: _Checker, data: Mapping[str, Any]) -> tuple[SparsitySupport, dict[str, str]]:
    if "sparsity" not in data:
        return SparsitySupport(), {}
    table = ck.table(data["sparsity"], "sparsity")
    prefix = "sparsity."
    ck.unknown(table, SPARSITY_KEYS, prefix)
    defaults = SparsitySupport()
    choices = {"zero_weights": ZERO_HANDLING, "zero_activations": ZERO_HANDLING,
               "activation_format": ACTIVATION_FORMATS}
    values: dict[str, Any] = {
        key: ck.string(table, key, prefix, options, required=False) or getattr(defaults, key)
        for key, options in choices.items()
    }
    fmt = ck.string(table, "weight_format", prefix, required=False)
    if fmt is not None:
        try:
            parse_format(fmt)
        except InputError as err:
            raise ck.fail(prefix + "weight_format", str(err)) from None
    values["weight_format"] = fmt or defaults.weight_format
    bits = ck.number(table, "index_bits", "int", prefix, required=False)
    if bits is not None and bits > 64:
        raise ck.fail(prefix + "index_bits", f"must be an integer from 1 to 64, got {bits}")
    values["index_bits"] = bits or defaults.index_bits
    numeric = {"index_bits"} if bits else set()
    values.update(_structured(ck, table, prefix))
    numeric |= {k for k in ("structured_speedup", "structured_metadata_bits", "channel_multiple")
                if k in table}
    sources = ck.sources(table, numeric | ({"structured"} if "structured" in table else set()),
                         prefix)
    return SparsitySupport(**values), sources


def _structured(ck: _Checker, table: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The structured-sparsity capability keys of ``[sparsity]``: ``structured`` (a list
    of N:M names) needs ``structured_speedup`` (1 to 16 x) and
    ``structured_metadata_bits`` (1 to 8), and they need it; ``channel_multiple`` (1 to
    256) stands alone."""
    out: dict[str, Any] = {}
    patterns = table.get("structured")
    keys = ("structured_speedup", "structured_metadata_bits")
    if patterns is None:
        given = [k for k in keys if k in table]
        if given:
            raise ck.fail(prefix + given[0], "applies to the patterns of 'structured', which is "
                          "missing (e.g. structured = [\"2:4\"])")
    else:
        if (not isinstance(patterns, list) or not patterns
                or not all(isinstance(p, str) for p in patterns)):
            raise ck.fail(prefix + "structured", f"must be a non-empty list of N:M pattern names "
                          f"such as [\"2:4\"], got {patterns!r}")
        for p in patterns:
            try:
                kind, _ = parse_format(p)
            except InputError:
                kind = ""
            if kind != "nm" or p in ("nm",):
                raise ck.fail(prefix + "structured", f"{p!r} is not an N:M pattern; accepted: "
                              "names such as \"2:4\", \"1:4\", \"4:8\"")
        if len(set(patterns)) != len(patterns):
            raise ck.fail(prefix + "structured", f"lists a pattern twice: {patterns!r}")
        out["structured"] = tuple(patterns)
        speedup = ck.number(table, "structured_speedup", "positive", prefix)
        if not 1 <= speedup <= 16:
            raise ck.fail(prefix + "structured_speedup", f"must be from 1 to 16 (x dense), got "
                          f"{speedup!r}")
        out["structured_speedup"] = float(speedup)
        meta = ck.number(table, "structured_metadata_bits", "int", prefix)
        if meta > 8:
            raise ck.fail(prefix + "structured_metadata_bits", f"must be an integer from 1 to 8, "
                          f"got {meta}")
        out["structured_metadata_bits"] = int(meta)
    multiple = ck.number(table, "channel_multiple", "int", prefix, required=False)
    if multiple is not None:
        if multiple > 256:
            raise ck.fail(prefix + "channel_multiple", f"must be an integer from 1 to 256, got "
                          f"{multiple}")
        out["channel_multiple"] = int(multiple)
    return out


def _parse_latency(ck: _Checker, data: Mapping[str, Any],
                   device_class: str) -> tuple[dict[str, float], dict[str, str]]:
    if "latency" not in data:
        return {}, {}
    table = ck.table(data["latency"], "latency")
    prefix = "latency."
    accepted = LATENCY_KEYS[device_class]
    extra = sorted(set(table) - {*accepted, "sources"})
    if extra:
        raise ck.fail(prefix + extra[0], f"unknown key for a {device_class} device; accepted keys "
                      "here are: " + (", ".join(sorted(accepted)) or "none"))
    values = {k: float(ck.number(table, k, "nonnegative" if k in FRACTION_LATENCY_KEYS
                                 | ZERO_LATENCY_KEYS else "positive", prefix))
              for k in accepted if k in table}
    for k in sorted(values):
        if k in FRACTION_LATENCY_KEYS or k == "gemm_efficiency":
            if values[k] > 1:
                raise ck.fail(prefix + k, f"must be a fraction in [0, 1], got {values[k]!r}")
        elif values[k] != 0 or k not in ZERO_LATENCY_KEYS:
            ck.bounded(values[k], prefix + k, *LATENCY_BOUNDS)
    return values, ck.sources(table, set(values), prefix)


def _parse_stream_bandwidth(ck: _Checker, data: Mapping[str, Any], device_class: str,
                            name: str = "stream_bandwidth"
                            ) -> tuple[tuple[tuple[float, float], ...], dict[str, str]]:
    """``[stream_bandwidth]`` (or the curve table ``name``, e.g. ``[gemv_bandwidth]``):
    ``footprint_bytes`` and ``bytes_per_cycle``, two lists of equal length (at least 2),
    footprints increasing, every value > 0, each with a source (cpu only)."""
    if name not in data:
        return (), {}
    prefix = f"{name}."
    if device_class != "cpu":
        raise ck.fail(name, f"only a cpu profile takes a {name} curve; "
                      f"this is a {device_class} profile")
    table = ck.table(data[name], name)
    ck.unknown(table, {"footprint_bytes", "bytes_per_cycle", "sources"}, prefix)
    lists = []
    for key in ("footprint_bytes", "bytes_per_cycle"):
        raw = table.get(key)
        if (not isinstance(raw, list) or len(raw) < 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float))
                       or not math.isfinite(v) or v <= 0 for v in raw)):
            raise ck.fail(prefix + key, f"must be a list of at least 2 numbers > 0, got {raw!r}")
        if len(raw) > MAX_CURVE_POINTS:
            raise ck.fail(prefix + key, f"has {len(raw)} points; at most {MAX_CURVE_POINTS} "
                          "are accepted")
        for v in raw:
            ck.bounded(v, prefix + key, *BOUNDS[key])
        lists.append([float(v) for v in raw])
    sizes, rates = lists
    if len(sizes) != len(rates):
        raise ck.fail(prefix + "bytes_per_cycle", f"must have one value per footprint_bytes "
                      f"entry ({len(sizes)}), got {len(rates)}")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ck.fail(prefix + "footprint_bytes", f"must increase, got {table['footprint_bytes']!r}")
    return tuple(zip(sizes, rates)), ck.sources(table, {"footprint_bytes", "bytes_per_cycle"}, prefix)


def _parse_holds(ck: _Checker, table: Mapping[str, Any], prefix: str, kind: str,
                 writable: bool) -> tuple[str, ...]:
    if "holds" not in table:
        if kind == "noc":
            return ()
        return ("weights",) if kind == "flash" and not writable else OPERANDS
    if kind == "noc":
        raise ck.fail(prefix + "holds", "a 'noc' level holds no data; leave holds out")
    raw = table["holds"]
    if (not isinstance(raw, list) or not raw or any(x not in OPERANDS for x in raw)
            or len(set(raw)) != len(raw)):
        raise ck.fail(prefix + "holds", f"must be a non-empty list of distinct operands from "
                      f"{', '.join(OPERANDS)}; got {raw!r}")
    if not writable and any(x != "weights" for x in raw):
        raise ck.fail(prefix + "holds", "a level without write_energy_pj (read-only flash) "
                      "can hold only weights")
    return tuple(x for x in OPERANDS if x in raw)


def _parse_partition(ck: _Checker, table: Mapping[str, Any], prefix: str,
                     holds: tuple[str, ...], size: int | None):
    if "partition_bytes" not in table:
        return ()
    raw = ck.table(table["partition_bytes"], prefix + "partition_bytes")
    groups = []
    covered: list[str] = []
    for key, value in raw.items():
        members = tuple(key.split("+"))
        if any(m not in holds for m in members):
            raise ck.fail(f"{prefix}partition_bytes.{key}", "names an operand this level does "
                          f"not hold; operands held: {', '.join(holds)} (join several with '+')")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ck.fail(f"{prefix}partition_bytes.{key}", f"must be an integer >= 1, got {value!r}")
        groups.append((tuple(x for x in OPERANDS if x in members), value))
        covered += members
    if sorted(covered) != sorted(holds):
        raise ck.fail(prefix + "partition_bytes", "must give every operand the level holds "
                      f"exactly one part; holds {', '.join(holds)}, parts cover {', '.join(covered)}")
    if size is not None and sum(v for _, v in groups) > size:
        raise ck.fail(prefix + "partition_bytes", f"parts add up to {sum(v for _, v in groups)} "
                      f"bytes, more than size_bytes ({size})")
    return tuple(groups)


def _parse_operand_energy(ck: _Checker, table: Mapping[str, Any], prefix: str,
                          holds: tuple[str, ...]) -> tuple[tuple[str, float, float], ...]:
    """``operand_energy_pj = { outputs = { read = 1.5, write = 1.5 }, ... }``: per held
    operand, its own read and write energy per access of ``word_bytes``."""
    if "operand_energy_pj" not in table:
        return ()
    raw = ck.table(table["operand_energy_pj"], prefix + "operand_energy_pj")
    low, high, _ = ENERGY_BOUNDS
    out = []
    for operand, energies in raw.items():
        key = f"{prefix}operand_energy_pj.{operand}"
        if operand not in holds:
            raise ck.fail(key, f"names an operand this level does not hold; operands held: "
                          f"{', '.join(holds)}")
        energies = ck.table(energies, key)
        extra = set(energies) - {"read", "write"}
        if extra or "read" not in energies or "write" not in energies:
            raise ck.fail(key, "must be a table with exactly the keys read and write (energies "
                          f"per access of word_bytes), got keys {', '.join(sorted(energies)) or 'none'}")
        values = []
        for what in ("read", "write"):
            v = energies[what]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
                raise ck.fail(f"{key}.{what}", f"must be a number in [{low:g}, {high:g}], got {v!r}")
            values.append(float(v))
        out.append((operand, values[0], values[1]))
    return tuple(sorted(out, key=lambda x: OPERANDS.index(x[0])))


def _parse_level(ck: _Checker, table: Mapping[str, Any], index: int,
                 clock_hz: float) -> MemoryLevel:
    prefix = f"memory[{index}]."
    ck.unknown(table, MEMORY_KEYS, prefix)
    name = ck.string(table, "name", prefix)
    if len(name) > MAX_LEVEL_NAME_CHARS or name != name.strip():
        raise ck.fail(prefix + "name", f"{name!r} is not accepted; a level name is a label of "
                      f"at most {MAX_LEVEL_NAME_CHARS} characters without leading or trailing "
                      "spaces (it names result columns)")
    prefix = f"memory[{index}] ({name})."
    kind = ck.string(table, "kind", prefix, MEMORY_KINDS)
    v = {k: ck.number(table, k, t, prefix) for k, t in MEMORY_REQUIRED.items()}
    v.update({k: ck.number(table, k, t, prefix, required=False) for k, t in MEMORY_OPTIONAL.items()})
    instances = v["instances"] or 1

    if kind == "noc":
        if v["size_bytes"] is not None:
            raise ck.fail(prefix + "size_bytes", "a 'noc' level moves data and holds none; "
                          "leave size_bytes out")
    elif v["size_bytes"] is None:
        raise ck.fail(prefix + "size_bytes", "missing key; required for every kind but 'noc' "
                      f"({_ACCEPTS['int']})")
    if v["line_bytes"] & (v["line_bytes"] - 1):
        raise ck.fail(prefix + "line_bytes", f"must be a power of two (1, 2, 4, ... "
                      f"{BOUNDS['line_bytes'][1]}), got {v['line_bytes']}; the cache simulator "
                      "and the latency models address whole lines")
    if v["word_bytes"] > v["line_bytes"]:
        raise ck.fail(prefix + "word_bytes", f"is {v['word_bytes']} but must not exceed "
                      f"line_bytes ({v['line_bytes']})")
    if kind == "cache":
        ways = v["associativity"]
        if ways is None:
            raise ck.fail(prefix + "associativity", "missing key; a 'cache' level needs its "
                          "number of ways (an integer >= 1)")
        if v["size_bytes"] % (v["line_bytes"] * ways):
            raise ck.fail(prefix + "size_bytes", f"{v['size_bytes']} is not divisible by "
                          f"line_bytes x associativity = {v['line_bytes']} x {ways}; "
                          "a cache has a whole number of sets")
    elif v["associativity"] is not None:
        raise ck.fail(prefix + "associativity", f"only a 'cache' level has ways; "
                      f"this level is a {kind!r}")
    if v["write_energy_pj"] is None and kind != "flash":
        raise ck.fail(prefix + "write_energy_pj", "missing key; required for every kind "
                      "but read-only 'flash' (a number > 0)")

    per_cycle, per_s = v["bandwidth_bytes_per_cycle"], v["bandwidth_gb_s"]
    if (per_cycle is None) == (per_s is None):
        raise ck.fail(prefix + "bandwidth_bytes_per_cycle", "give exactly one of "
                      "bandwidth_bytes_per_cycle (per instance) and bandwidth_gb_s "
                      "(all instances together, 1e9 bytes/s)")
    if per_cycle is None:
        per_cycle = per_s * 1e9 / clock_hz / instances

    holds = _parse_holds(ck, table, prefix, kind, v["write_energy_pj"] is not None)
    partition = _parse_partition(ck, table, prefix, holds, v["size_bytes"])
    operand_energy = _parse_operand_energy(ck, table, prefix, holds)
    sliding = table.get("sliding_window", False)
    if not isinstance(sliding, bool):
        raise ck.fail(prefix + "sliding_window", f"must be true or false, got {sliding!r}")
    if sliding and index != 0:
        raise ck.fail(prefix + "sliding_window", "only the innermost level (memory[0]) feeds "
                      "the MACs' sliding windows")

    numeric = {k for k in v if v[k] is not None} | ({"partition_bytes"} if partition else set()) \
        | ({"operand_energy_pj"} if operand_energy else set())
    sources = ck.sources(table, numeric, prefix)
    if per_s is not None and "bandwidth_gb_s" in sources:
        sources.setdefault("bandwidth_bytes_per_cycle", sources["bandwidth_gb_s"]
                           + " (converted with the device clock)")
    return MemoryLevel(
        name=name,
        kind=kind,
        size_bytes=v["size_bytes"],
        instances=instances,
        line_bytes=v["line_bytes"],
        word_bytes=v["word_bytes"],
        associativity=v["associativity"],
        latency_cycles=float(v["latency_cycles"]),
        read_energy_pj=float(v["read_energy_pj"]),
        write_energy_pj=None if v["write_energy_pj"] is None else float(v["write_energy_pj"]),
        bandwidth_bytes_per_cycle=float(per_cycle),
        holds=holds,
        partition_bytes=partition,
        operand_energy_pj=operand_energy,
        sliding_window=sliding,
        sources=MappingProxyType(sources),
    )


def _check_hierarchy(ck: _Checker, levels: tuple[MemoryLevel, ...], energy_unit: str = "pJ") -> None:
    names = [lvl.name.lower() for lvl in levels]
    for i, lvl in enumerate(levels):
        if names[i] in names[:i]:
            earlier = levels[names.index(names[i])].name
            raise ck.fail(f"memory[{i}].name", f"{lvl.name!r} is already used by an earlier "
                          f"level ({earlier!r}); level names must be unique, ignoring case "
                          "(they name result columns in lower case)")
        clash = [names[i] + suffix for suffix in LEVEL_COLUMN_SUFFIXES
                 if names[i] + suffix in ENERGY_TABLE_COLUMNS]
        if clash or names[i] == "memory":
            why = (f"its column {clash[0]} would overwrite the energy table's own {clash[0]}"
                   if clash else "the cache simulator's table calls main memory 'memory'")
            raise ck.fail(f"memory[{i}].name", f"{lvl.name!r} is reserved: {why}; a level name "
                          "may not be any of (ignoring case): "
                          + ", ".join([*RESERVED_LEVEL_NAMES, "memory"]))
    if levels[-1].kind not in BACKING_KINDS:
        raise ck.fail(f"memory[{len(levels) - 1}].kind", "the last (outermost) level must "
                      "be a backing memory: one of " + ", ".join(BACKING_KINDS))
    if levels[0].kind == "noc":
        raise ck.fail("memory[0].kind", "a 'noc' level moves data between storage levels; "
                      "it cannot be the innermost level")
    if sum(lvl.kind == "noc" for lvl in levels) > 1:
        raise ck.fail("memory", "at most one 'noc' level is accepted")
    if "outputs" not in levels[0].holds:
        raise ck.fail("memory[0].holds", "the innermost level feeds the MACs and must hold "
                      "the outputs (their partial sums); weights and inputs may bypass it "
                      "(read from the next level holding them at every MAC that needs a new "
                      "one)")
    if levels[0].sliding_window and "inputs" not in levels[0].holds:
        raise ck.fail("memory[0].sliding_window", "the level does not hold inputs, so it keeps "
                      "no input window; leave sliding_window out or add inputs to holds")
    for operand in OPERANDS:
        outer = [i for i, lvl in enumerate(levels) if operand in lvl.holds][-1]
        if levels[outer].kind not in BACKING_KINDS:
            raise ck.fail(f"memory[{outer}] ({levels[outer].name}).holds", f"{operand} must "
                          "end in a backing memory (dram, flash or sram), but the outermost "
                          f"level holding them is a {levels[outer].kind!r}")
    # Storage levels are ordered; a NoC moves data between two of them and may cost
    # less than the innermost (Timeloop's and ZigZag's networks often do).
    storage = [(i, lvl) for i, lvl in enumerate(levels) if lvl.kind != "noc"]
    for (_, inner), (i, outer) in zip(storage, storage[1:]):
        for attr, unit in (("latency_cycles", "cycles"), ("read_energy_pj", energy_unit)):
            a, b = getattr(inner, attr), getattr(outer, attr)
            if b < a:
                raise ck.fail(
                    f"memory[{i}] ({outer.name}).{attr}",
                    f"levels out of order: {outer.name} ({b:g} {unit}) comes after "
                    f"{inner.name} ({a:g} {unit}); list storage levels innermost first, "
                    f"each no faster and no cheaper than the one before (a noc level may "
                    f"be cheaper)",
                )


def read_profile_bytes(path: str | Path) -> bytes:
    """The bytes of a profile file: a regular file of at most :data:`MAX_PROFILE_BYTES`.

    Anything else (a directory, a FIFO, a device such as ``/dev/zero``, a file too
    large, a path the system refuses) is a :class:`ProfileError` naming the file;
    nothing is opened that could block or read forever.
    """
    origin = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ProfileError(origin, "", "no such file") from None
    except OSError as exc:
        raise ProfileError(origin, "", f"cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:          # an embedded NUL byte
        raise ProfileError(origin, "", f"is not a usable path: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ProfileError(origin, "", f"is {file_kind(info.st_mode)}, not a regular file; "
                           "a profile is a TOML file")
    too_big = (f"is larger than {MAX_PROFILE_BYTES} bytes (1 MiB), the most a profile may "
               "have; a profile is a short TOML file")
    if info.st_size > MAX_PROFILE_BYTES:
        raise ProfileError(origin, "", too_big)
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, open does not wait.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ProfileError(origin, "", f"cannot be read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ProfileError(origin, "", "is not a regular file; a profile is a TOML file")
        chunks, size = [], 0
        while size <= MAX_PROFILE_BYTES:
            chunk = os.read(fd, MAX_PROFILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ProfileError(origin, "", f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > MAX_PROFILE_BYTES:
        raise ProfileError(origin, "", too_big)
    return b"".join(chunks)


def load_profile(path: str | Path) -> DeviceProfile:
    """Read and check one profile TOML file (see :func:`read_profile_bytes` for what
    file is accepted)."""
    origin = str(path)
    text = read_profile_bytes(path)
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProfileError(origin, "", "is not UTF-8 text; a profile is a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(origin, "", f"is not valid TOML: {exc}") from None
    except RecursionError:
        raise ProfileError(origin, "", "nests too deeply to be a device profile") from None
    return parse_profile(data, origin)
