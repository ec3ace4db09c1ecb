"""The Python API: the same objects and tables the ``hwprune`` command prints."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from .cost.energy import energy_breakdown, network_energy
from .errors import InputError, UnknownNameError
from .hardware.profile import DeviceProfile
from .hardware.registry import get_device, list_devices
from .report.tables import device_detail_table, devices_table, network_table, networks_table
from .workload.network import Network
from .workload.zoo import load_builtin, zoo_names

MODEL_SUFFIXES = (".onnx", ".pt", ".pth")


def network(name_or_path: str | Path | Network) -> Network:
    """A built-in network by name (see :func:`networks`), or an ``.onnx`` file.

    Other model files (PyTorch ``.pt``) are read through the Python API
    (:func:`hwprune.workload.torch_import.from_torch`); a path to one gets an
    :class:`InputError`.
    """
    if isinstance(name_or_path, Network):
        return name_or_path
    name = str(name_or_path)
    if name in zoo_names():
        return load_builtin(name)
    if Path(name).suffix.lower() == ".onnx":
        from .workload.onnx_import import load_onnx
        return load_onnx(name).network
    if Path(name).suffix.lower() in MODEL_SUFFIXES or Path(name).is_file():
        raise InputError(
            f"cannot read model file {name!r}: the command line reads .onnx files; a PyTorch "
            "module goes through hwprune.workload.torch_import.from_torch in Python, or export it "
            "with torch.onnx.export; built-in networks: " + ", ".join(zoo_names())
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


def energy(net: str | Path | Network, dev: str | Path | DeviceProfile, densities=None,
           batch: int = 1, dataflow: str | None = None, weight_format: str | None = None,
           profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Energy per conv/fc layer of ``net`` on ``dev``, by memory level and operand.

    Args:
        net: built-in network name or :class:`Network`.
        dev: device id, TOML path or :class:`DeviceProfile`.
        densities: per-layer weight and input-activation densities (dict, Series,
            DataFrame or CSV path; see :mod:`hwprune.cost.densities`); ``None`` = dense.
        batch: inputs processed together; weights are reused across them.
        dataflow: dataflow preset (default: the device's).
        weight_format: storage of pruned weights, ``dense``, ``csr``, ``rle`` or
            ``simd-group`` (default: the device's).
        profiles: extra directories of device profiles.

    Returns:
        One row per conv/fc layer. Columns: ``layer``, ``kind``, ``macs`` (whole
        batch), ``effective_macs`` (MACs whose energy is spent), ``weight_density``,
        ``act_density``, ``energy_pj``, ``energy_norm`` (energy in units of one MAC
        on this device), for each memory level L (lower-case name, innermost first,
        then the NoC) ``L_accesses`` (word accesses, reads + writes; NoC transfers)
        and ``L_pj``; ``weights_pj``, ``index_pj``, ``inputs_pj``, ``outputs_pj``,
        ``compute_pj`` (the same energy split by operand; index = sparse-format
        indices and pointers); ``fits_memory``; ``dataflow``; ``weight_format``;
        ``mapping`` (tiles per level, spatial unrolling, stationary operand).
        ``energy_pj`` is the sum of the level columns plus ``compute_pj``, and equals
        the sum of the operand columns.
    """
    return network_energy(network(net), device(dev, profiles), densities, batch, dataflow,
                          weight_format)


def energy_detail(net: str | Path | Network, dev: str | Path | DeviceProfile, densities=None,
                  batch: int = 1, dataflow: str | None = None, weight_format: str | None = None,
                  profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """One row per (layer, memory level, operand): element ``reads`` and ``writes``,
    ``word_accesses`` and ``energy_pj`` (see :func:`energy` for the arguments)."""
    return energy_breakdown(network(net), device(dev, profiles), densities, batch, dataflow,
                            weight_format)


def prune(model: str, criterion: str = "magnitude", granularity: str = "fine", density=0.1,
          schedule: str = "oneshot", group: int | None = None, epochs: int = 10, seed: int = 0):
    """Train a reference model (``digits-mlp`` or ``digits-cnn``) and prune it; returns
    a :class:`~hwprune.prune.schedules.PruneResult` (see ``hwprune prune``)."""
    from .prune import models
    from .prune.schedules import check_request
    from .prune.schedules import prune as run

    spec = models.spec(model)
    check_request(models.build(model), criterion, granularity, density, schedule, group, epochs)
    trained, data = models.trained(model, seed)
    return run(trained, data, criterion, granularity, density, schedule, group, epochs,
               spec.recipe, seed)


def sensitivity(model: str, criterion: str = "magnitude", granularity: str = "fine",
                densities=None, group: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Accuracy against density, one layer pruned at a time (see ``hwprune sensitivity``)."""
    from .prune import models
    from .prune.schedules import check_request
    from .prune.sensitivity import DEFAULT_DENSITIES
    from .prune.sensitivity import sensitivity as run

    check_request(models.build(model), criterion, granularity, 1.0, "oneshot", group, 0)
    trained, data = models.trained(model, seed)
    return run(trained, data, criterion, granularity, densities or DEFAULT_DENSITIES, group, seed)


def granularity(model: str, dev: str | Path | DeviceProfile, tolerance: float = 0.01,
                seed: int = 0, profiles: Sequence[str | Path] = (), progress=None):
    """Scalpel's per-layer choice for a reference model on a device; returns a
    :class:`~hwprune.prune.scalpel.ScalpelResult` (see ``hwprune granularity``)."""
    from .prune import models
    from .prune.scalpel import scalpel

    if model not in models.MODELS:
        raise UnknownNameError(
            "measuring how far each scheme prunes needs a trained reference model ("
            + ", ".join(models.MODELS) + f"); for {model!r} give --density, the density you expect "
            "to reach, and hwprune chooses from the simulators alone")
    return scalpel(model, device(dev, profiles), tolerance, seed, progress)


def recommend(net: str | Path | Network, dev: str | Path | DeviceProfile, density: float,
              profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Per-layer granularity from the simulators at an expected density (any network,
    including .onnx files and imported PyTorch modules); see
    :mod:`hwprune.prune.recommend`."""
    from .prune import models
    from .prune.recommend import recommend as run

    if isinstance(net, str) and net in models.MODELS:
        net = models.to_network(models.build(net))
    return run(network(net), device(dev, profiles), density)


def calibrate(progress=None, quick: bool = False) -> str:
    """Measure this machine and return its cpu profile as TOML text (marked
    'calibrated on host'); ``progress``, if given, is called with the name of each step.
    ``quick`` fits on the in-cache shapes only. The text is parsed with the profile
    loader before it is returned, so a bad profile is never handed back; see
    :mod:`hwprune.calibrate`."""
    import tomllib

    from .calibrate import host
    from .hardware.loader import parse_profile

    text = host.calibrate(progress, quick=quick)
    parse_profile(tomllib.loads(text), "calibrated profile")   # never write a bad profile
    return text
