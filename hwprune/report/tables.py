"""The tables hwprune prints, as pandas DataFrames with documented columns."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from ..hardware.profile import DeviceProfile
from ..workload.network import Network
from ..workload.ops import Shape


def _shape(shape: Shape | None) -> str:
    return "" if shape is None else "x".join(str(d) for d in shape)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def network_table(net: Network) -> pd.DataFrame:
    """One row per layer.

    Columns: ``layer`` (name), ``kind`` (conv, fc, maxpool, ...), ``inputs``
    (comma-separated producer names), ``input_shape`` and ``output_shape``
    (``CxHxW`` or ``F``, batch excluded), ``weight_shape`` (``MxCxRxS`` for conv,
    ``OUTxIN`` for fc, empty otherwise), ``groups``, ``macs`` (multiply-accumulates
    per input sample), ``params`` (trainable parameters).
    """
    rows = [
        {
            "layer": layer.name,
            "kind": layer.kind,
            "inputs": ",".join(layer.inputs),
            "input_shape": " + ".join(_shape(s) for s in layer.input_shapes),
            "output_shape": _shape(layer.output_shape),
            "weight_shape": _shape(layer.weight_shape),
            "groups": layer.groups,
            "macs": layer.macs,
            "params": layer.params,
        }
        for layer in net.layers
    ]
    return pd.DataFrame(rows, columns=["layer", "kind", "inputs", "input_shape", "output_shape",
                                       "weight_shape", "groups", "macs", "params"])


def networks_table(nets: Iterable[Network]) -> pd.DataFrame:
    """One row per network.

    Columns: ``network``, ``input_shape``, ``layers`` (all layers),
    ``weighted_layers`` (conv + fc), ``macs`` (per input sample), ``params``,
    ``description``.
    """
    rows = [
        {
            "network": net.name,
            "input_shape": _shape(net.input_shape),
            "layers": len(net),
            "weighted_layers": len(net.weighted_layers),
            "macs": net.macs,
            "params": net.params,
            "description": net.description,
        }
        for net in nets
    ]
    return pd.DataFrame(rows, columns=["network", "input_shape", "layers", "weighted_layers",
                                       "macs", "params", "description"])


def devices_table(devices: Iterable[DeviceProfile]) -> pd.DataFrame:
    """One row per device profile.

    Columns: ``device`` (id), ``class``, ``name``, ``dataflow`` (default of the energy
    model), ``clock_mhz``, ``units``
    (cores/SMs/PEs), ``simd`` (``lanes x bits``), ``peak_gmacs`` (device-wide peak,
    GMAC/s), ``mac_pj`` (energy per MAC, in ``energy_unit``), ``energy_unit`` (what
    the profile's energies are in: ``pJ``, or ``MAC-equivalents`` when they are
    normalized to one MAC of the device, so ``mac_pj`` is 1 and energies compare only
    within that device), ``memory`` (levels innermost first with their per-instance
    size), ``origin`` (the file the profile was read from).
    """
    rows = []
    for dev in devices:
        c = dev.compute
        rows.append(
            {
                "device": dev.id,
                "class": dev.device_class,
                "name": dev.name,
                "dataflow": dev.dataflow,
                "clock_mhz": dev.clock_hz / 1e6,
                "units": c.units,
                "simd": f"{c.simd_lanes}x{c.simd_element_bits}b",
                "peak_gmacs": dev.peak_macs_per_second / 1e9,
                "mac_pj": c.mac_energy_pj,
                "energy_unit": dev.energy_unit,
                "memory": " > ".join(
                    lvl.name if lvl.size_bytes is None else f"{lvl.name} {_bytes(lvl.size_bytes)}"
                    + (f" x{lvl.instances}" if lvl.instances > 1 else "")
                    for lvl in dev.memory
                ),
                "origin": dev.origin,
            }
        )
    return pd.DataFrame(rows, columns=["device", "class", "name", "dataflow", "clock_mhz",
                                       "units", "simd", "peak_gmacs", "mac_pj", "energy_unit",
                                       "memory", "origin"])


_LEVEL_FIELDS = (
    ("size_bytes", "bytes"),
    ("instances", "count"),
    ("line_bytes", "bytes"),
    ("word_bytes", "bytes"),
    ("associativity", "ways"),
    ("latency_cycles", "cycles"),
    ("read_energy_pj", "{energy}/word"),
    ("write_energy_pj", "{energy}/word"),
    ("bandwidth_bytes_per_cycle", "bytes/cycle"),
)
_COMPUTE_FIELDS = (
    ("units", "count"),
    ("simd_lanes", "lanes"),
    ("simd_element_bits", "bits"),
    ("macs_per_unit_per_cycle", "MAC/cycle"),
    ("mac_energy_pj", "{energy}"),
    ("array_rows", "PEs"),
    ("array_cols", "PEs"),
    ("psum_bits", "bits"),
)


def device_detail_table(dev: DeviceProfile) -> pd.DataFrame:
    """Every numeric value of one profile with its unit and its source.

    Columns: ``key`` (dotted, e.g. ``memory.L1.size_bytes``), ``value``, ``unit``,
    ``source`` (empty when the profile gives none). Energies are in the profile's
    ``energy_unit``: ``pJ`` and ``pJ/word``, or ``MAC-equivalents`` and
    ``MAC-equivalents/word`` on a normalized profile.
    """
    rows = [{"key": "clock_hz", "value": dev.clock_hz, "unit": "Hz",
             "source": dev.sources.get("clock_hz", "")}]
    for attr, unit in _COMPUTE_FIELDS:
        value = getattr(dev.compute, attr)
        if value is not None:
            rows.append({"key": f"compute.{attr}", "value": value,
                         "unit": unit.format(energy=dev.energy_unit),
                         "source": dev.sources.get(f"compute.{attr}", "")})
    for lvl in dev.memory:
        for attr, unit in _LEVEL_FIELDS:
            value = getattr(lvl, attr)
            if value is not None:
                rows.append({"key": f"memory.{lvl.name}.{attr}", "value": value,
                             "unit": unit.format(energy=dev.energy_unit),
                             "source": lvl.sources.get(attr, "")})
        for operand, read, write in lvl.operand_energy_pj:
            for what, value in (("read", read), ("write", write)):
                rows.append({"key": f"memory.{lvl.name}.operand_energy_pj.{operand}.{what}",
                             "value": value, "unit": f"{dev.energy_unit}/word",
                             "source": lvl.sources.get("operand_energy_pj", "")})
    df = pd.DataFrame(rows, columns=["key", "value", "unit", "source"])
    df["value"] = df["value"].astype(float)
    return df
