"""The Python API: the same objects and tables the ``hwprune`` command prints."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from .errors import InputError, UnknownNameError
from .hardware.profile import DeviceProfile
from .hardware.registry import get_device, list_devices
from .report.tables import device_detail_table, devices_table, network_table, networks_table
from .workload.network import Network
from .workload.zoo import load_builtin, zoo_names

MODEL_SUFFIXES = (".onnx", ".pt", ".pth")


def network(name_or_path: str | Path | Network) -> Network:
    """A built-in network by name (see :func:`networks`).

    Model files are not read by this version; a path gets an :class:`InputError`.
    """
    if isinstance(name_or_path, Network):
        return name_or_path
    name = str(name_or_path)
    if name in zoo_names():
        return load_builtin(name)
    if Path(name).suffix.lower() in MODEL_SUFFIXES or Path(name).is_file():
        raise InputError(
            f"cannot read model file {name!r}: this version of hwprune reads no model files; "
            "use a built-in network: " + ", ".join(zoo_names())
        )
    raise UnknownNameError(f"unknown network {name!r}; built-in networks: " + ", ".join(zoo_names()))


def device(name_or_path: str | Path | DeviceProfile,
           profiles: Sequence[str | Path] = ()) -> DeviceProfile:
    """A device profile by id, or from a TOML file path.

    ``profiles`` adds directories of profiles (as ``--profiles`` does); the
    ``HWPRUNE_PROFILES`` environment variable is read as well.
    """
    return get_device(name_or_path, profiles)


def networks() -> pd.DataFrame:
    """The built-in networks, one row each (see :func:`hwprune.report.tables.networks_table`)."""
    return networks_table(load_builtin(n) for n in zoo_names())


def devices(profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Every known device profile, one row each (see :func:`devices_table`)."""
    return devices_table(list_devices(profiles))


def show(net: str | Path | Network) -> pd.DataFrame:
    """One row per layer of a network (see :func:`network_table`)."""
    return network_table(network(net))


def device_detail(dev: str | Path | DeviceProfile, profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Every value of a device profile with its unit and source (see :func:`device_detail_table`)."""
    return device_detail_table(device(dev, profiles))
