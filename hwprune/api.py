"""The Python API: the same objects and tables the ``hwprune`` command prints."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from . import checks
from .checks import (  # noqa: F401  (re-exported: the CLI checks values through the API)
    MAX_BATCH,
    check_batch,
    check_density,
    check_integer,
    check_seed,
    check_tolerance,
)
from .cost.energy import energy_breakdown, level_columns, network_energy  # noqa: F401
from .errors import InputError, UnknownNameError
from .hardware.profile import DATAFLOWS, WEIGHT_FORMATS, DeviceProfile  # noqa: F401
from .hardware.registry import get_device, list_devices
from .report.tables import device_detail_table, devices_table, network_table, networks_table
from .workload.network import Network
from .workload.zoo import load_builtin, zoo_names

MODEL_SUFFIXES = (".onnx", ".pt", ".pth")
NETWORK_ACCEPTED = "a built-in network name, an .onnx file path or a Network"
DEVICE_ACCEPTED = "a device id, a .toml profile path or a DeviceProfile"


# -- argument checks at the entry points: the same texts as the CLI (hwprune.checks) --

def _network_arg(value: Any) -> Network | str | os.PathLike:
    if isinstance(value, Network):
        return value
    if isinstance(value, DeviceProfile):
        raise InputError(f"network must be {NETWORK_ACCEPTED}, got the device profile "
                         f"{value.id!r} (network and device swapped?)")
    return checks.check_name_or_path(value, "network", NETWORK_ACCEPTED)


def _device_arg(value: Any) -> DeviceProfile | str | os.PathLike:
    if isinstance(value, DeviceProfile):
        return value
    if isinstance(value, Network):
        raise InputError(f"device must be {DEVICE_ACCEPTED}, got the network {value.name!r} "
                         "(network and device swapped?)")
    return checks.check_name_or_path(value, "device", DEVICE_ACCEPTED)


def _devices_arg(value: Any) -> list:
    return checks.check_list(value, "devices", _device_arg, "a list of devices (each "
                             + DEVICE_ACCEPTED + ")", single=(str, os.PathLike, DeviceProfile),
                             empty=False)


def _option(value: Any, what: str, accepted: Sequence[str]) -> str | None:
    """An optional name (dataflow, weight format): None or text."""
    return None if value is None else checks.check_text(value, what, ", ".join(accepted))


def _scheme_arg(value: Any, what: str = "scheme"):
    from .schemes import Scheme

    if isinstance(value, Scheme):
        return value
    return checks.check_text(value, what, ", ".join(scheme_names()))


def _schemes_arg(value: Any):
    """None (the default schemes) or one or more schemes."""
    from .schemes import Scheme

    if value is None:
        return None
    return checks.check_list(value, "schemes", _scheme_arg, "a list of scheme names ("
                             + ", ".join(scheme_names()) + ")", single=(str, Scheme), empty=False)


def _progress_arg(value: Any):
    if value is not None and not callable(value):
        raise InputError(f"progress must be a function or None, got {type(value).__name__}")
    return value




def network(name_or_path: str | Path | Network) -> Network:
    """A built-in network by name (see :func:`networks`), or an ``.onnx`` file.

    Other model files (PyTorch ``.pt``) are read through the Python API
    (:func:`hwprune.workload.torch_import.from_torch`); a path to one gets an
    :class:`InputError`.
    """
    name_or_path = _network_arg(name_or_path)
    if isinstance(name_or_path, Network):
        return name_or_path
    name = os.fspath(name_or_path)
    if isinstance(name, bytes):
        raise InputError(f"network must be {NETWORK_ACCEPTED}, got a bytes path")
    if name in zoo_names():
        return load_builtin(name)
    if Path(name).suffix.lower() == ".onnx":
        from .workload.onnx_import import load_onnx
        return load_onnx(name).network
    try:
        is_file = Path(name).is_file()
    except (OSError, ValueError) as exc:     # a name too long, a NUL byte
        why = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"network {name[:80]!r}{'...' if len(name) > 80 else ''} is neither "
                         f"a built-in network nor a readable file ({why}); built-in networks: "
                         + ", ".join(zoo_names())) from None
    if Path(name).suffix.lower() in MODEL_SUFFIXES or is_file:
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
    return get_device(_device_arg(name_or_path), checks.check_paths(profiles))


def networks() -> pd.DataFrame:
    """The built-in networks, one row each (see :func:`hwprune.report.tables.networks_table`)."""
    return networks_table(load_builtin(n) for n in zoo_names())


def devices(profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Every known device profile, one row each (see :func:`devices_table`)."""
    return devices_table(list_devices(checks.check_paths(profiles)))


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
        One row per layer (the totals are the sums of the rows). Columns: ``layer``,
        ``kind``, ``category`` (``compute``, ``normalization``, ``elementwise``,
        ``pooling``, ``data``), ``runs_as`` (``kernel`` for conv/fc/matmul; a layer
        without MACs is ``folded``, ``fused``, ``view``, ``copy`` or ``stream``, see
        :mod:`hwprune.workload.passes`), ``macs`` (whole batch), ``effective_macs``
        (MACs whose energy is spent), ``ops`` (element operations of a pass, whole
        batch), ``weight_density``,
        ``act_density``, ``energy_pj``, ``energy_norm`` (energy in units of one MAC
        on this device), for each memory level L (lower-case name, innermost first,
        then the NoC) ``L_accesses`` (word accesses, reads + writes; NoC transfers)
        and ``L_pj``; ``weights_pj``, ``index_pj``, ``inputs_pj``, ``outputs_pj``,
        ``compute_pj`` (the same energy split by operand; index = sparse-format
        indices and pointers); ``energy_unit`` (what the ``_pj`` columns hold: ``pJ``,
        or ``MAC-equivalents`` on a device whose energies are normalized to one MAC);
        ``fits_memory``; ``dataflow``; ``weight_format``;
        ``mapping`` (tiles per level, spatial unrolling, stationary operand; ``pass
        (runs_as)`` on a layer without MACs).
        ``energy_pj`` is the sum of the level columns plus ``compute_pj``, and equals
        the sum of the operand columns.
    """
    net, dev = _network_arg(net), _device_arg(dev)
    batch = check_batch(batch)
    dataflow = _option(dataflow, "dataflow", DATAFLOWS)
    weight_format = _option(weight_format, "weight format", WEIGHT_FORMATS)
    return network_energy(network(net), device(dev, profiles), densities, batch, dataflow,
                          weight_format)


def energy_detail(net: str | Path | Network, dev: str | Path | DeviceProfile, densities=None,
                  batch: int = 1, dataflow: str | None = None, weight_format: str | None = None,
                  profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """One row per (layer, memory level, operand): element ``reads`` and ``writes``,
    ``word_accesses``, ``energy_pj`` and ``energy_unit`` (see :func:`energy` for the
    arguments and the unit)."""
    net, dev = _network_arg(net), _device_arg(dev)
    batch = check_batch(batch)
    dataflow = _option(dataflow, "dataflow", DATAFLOWS)
    weight_format = _option(weight_format, "weight format", WEIGHT_FORMATS)
    return energy_breakdown(network(net), device(dev, profiles), densities, batch, dataflow,
                            weight_format)


def check_scheme(name: str, pruning_only: bool = False) -> str:
    """The registered name of scheme ``name`` (or of its alias), else an
    :class:`InputError` listing the accepted names."""
    from .schemes import scheme

    s = scheme(_scheme_arg(name))
    if pruning_only and not s.prunes:
        raise InputError(f"scheme {s.name!r} prunes nothing; accepted: "
                         + ", ".join(scheme_names(pruning_only=True)))
    return s.name


def check_reference_model(name: str) -> str:
    """``name`` if it is a reference model, else an :class:`UnknownNameError`."""
    from .prune import models

    return models.spec(checks.check_text(name, "model", ", ".join(models.MODELS))).name


def bench_kernels(storage: Sequence[str] | None = None, shapes: Sequence[str] | None = None,
                  quick: bool = False, repeats: int = 7):
    """Time every storage format's kernel on this machine (``hwprune bench kernels``);
    returns (per-call table, break-even summary, streaming bandwidth in GB/s)."""
    from .sparse import bench

    storage = tuple(storage) if storage else bench.STORAGE
    unknown = [s for s in storage if s not in bench.STORAGE]
    if unknown:
        raise InputError(f"unknown storage {unknown[0]!r}; accepted: " + ", ".join(bench.STORAGE))
    if bench.BASELINE not in storage:
        storage = (*storage, bench.BASELINE)   # speedups and break-even need the baseline
    names = shapes or (bench.QUICK_SHAPES if quick else [s.name for s in bench.SHAPES])
    df, bandwidth = bench.run(bench.shapes_by_name(names),
                              bench.QUICK_DENSITIES if quick else bench.DENSITIES,
                              storage, repeats=3 if quick else repeats,
                              progress=bench.stderr_progress)
    return df, bench.summary(df), bandwidth


def schemes() -> pd.DataFrame:
    """The registered schemes, one row each: ``scheme``, ``group`` (what one mask group
    is), ``kernel`` (the format that runs it), ``storage``, ``removes_units``,
    ``aliases``, ``description``, ``source`` (see :mod:`hwprune.schemes`)."""
    from .schemes import all_schemes

    return pd.DataFrame([{"scheme": s.name, "group": s.group.value, "kernel": s.kernel.value,
                          "storage": s.storage, "removes_units": s.removes_units,
                          "aliases": ",".join(s.aliases), "description": s.description,
                          "source": s.source} for s in all_schemes()])


def scheme_names(pruning_only: bool = False) -> tuple[str, ...]:
    """Names the CLI and the API accept for a scheme (``dense`` unless ``pruning_only``)."""
    from .schemes import names

    return names(pruning_only)


def evaluate(net: str | Path | Network, dev: str | Path | DeviceProfile, plan=None, batch: int = 1,
             profiles: Sequence[str | Path] = ()):
    """Energy, latency and bytes per conv/fc layer of ``net`` pruned by ``plan`` on
    ``dev``: an :class:`~hwprune.evaluate.Evaluation` (``.total``, ``.to_frame()``).

    ``plan``: a :class:`~hwprune.evaluate.Plan`, or a mapping ``{layer: (scheme,
    density)}``; ``None`` = dense."""
    from .evaluate import Plan
    from .evaluate import evaluate as run

    net, dev, batch = _network_arg(net), _device_arg(dev), check_batch(batch)
    if plan is not None and not isinstance(plan, Plan):
        if not isinstance(plan, dict):
            raise InputError(f"plan must be a Plan or a dict {{layer: (scheme, density)}}, got "
                             f"{type(plan).__name__}")
        plan = Plan(plan)
    return run(network(net), device(dev, profiles), plan, batch)


def latency(net: str | Path | Network, dev: str | Path | DeviceProfile, scheme: str = "dense",
            density: float = 1.0, profiles: Sequence[str | Path] = (), batch: int = 1) -> pd.DataFrame:
    """Predicted latency per layer for ``batch`` inputs processed together, the network's
    time the sum of the rows (see :func:`hwprune.latency.network_latency`)."""
    from .latency import network_latency

    net, dev = _network_arg(net), _device_arg(dev)
    scheme, density, batch = _scheme_arg(scheme), check_density(density), check_batch(batch)
    return network_latency(network(net), device(dev, profiles), scheme, density, batch)


def breakeven(net: str | Path | Network, dev: str | Path | DeviceProfile, schemes=None,
              profiles: Sequence[str | Path] = (), batch: int = 1) -> pd.DataFrame:
    """Per layer and scheme, the density below which it beats dense at ``batch`` (see
    :func:`hwprune.latency.breakeven`); ``schemes`` default fine, simd, node and the N:M
    patterns the device runs natively."""
    from .latency import network as L

    net, dev, schemes = _network_arg(net), _device_arg(dev), _schemes_arg(schemes)
    batch = check_batch(batch)
    return L.breakeven(network(net), device(dev, profiles), schemes, batch)


def latency_curves(net: str | Path | Network, dev: str | Path | DeviceProfile, schemes=None,
                   profiles: Sequence[str | Path] = (), batch: int = 1) -> pd.DataFrame:
    """Latency against density per layer and scheme at ``batch`` (see
    :func:`hwprune.latency.latency_curves`)."""
    from .latency import network as L

    net, dev, schemes = _network_arg(net), _device_arg(dev), _schemes_arg(schemes)
    batch = check_batch(batch)
    return L.latency_curves(network(net), device(dev, profiles), schemes,
                            batch=batch)


def cachesim_layer(net: str | Path | Network, layer: str, dev: str | Path | DeviceProfile,
                   scheme: str, density: float, seed: int = 0, refresh_on_store: bool = True,
                   profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Cache counts of one layer's kernel (see :func:`hwprune.cost.cache_runs.simulate_layer`)."""
    from .cost.cache_runs import simulate_layer

    net, dev = _network_arg(net), _device_arg(dev)
    layer = checks.check_text(layer, "layer")
    scheme, density, seed = _scheme_arg(scheme), check_density(density), check_seed(seed)
    return simulate_layer(network(net)[layer], device(dev, profiles), scheme, density, seed,
                          refresh_on_store)


def cachesim_trace(path: str | Path, dev: str | Path | DeviceProfile, refresh_on_store: bool = True,
                   profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Cache counts of a trace file (see :func:`hwprune.cost.cache_runs.simulate_trace`)."""
    from .cost.cache_runs import simulate_trace

    path = checks.check_name_or_path(path, "trace", "the path of a .npy file")
    return simulate_trace(path, device(dev, profiles), refresh_on_store)


def reference_models() -> tuple[str, ...]:
    """The trained reference models the decision verbs prune."""
    from .prune.models import MODELS

    return tuple(MODELS)


def criteria() -> tuple[str, ...]:
    from .prune.criteria import CRITERIA

    return tuple(CRITERIA)


def schedules() -> tuple[str, ...]:
    from .prune.schedules import SCHEDULES

    return tuple(SCHEDULES)


TORCH_MODEL_ACCEPTED = ("a torch.nn.Module with example_input= and evaluate=/finetune= callbacks or "
                        "loaders=(train_loader, test_loader)")


def _is_model_name(model: Any) -> bool:
    return isinstance(model, str)


def _is_torch_model(model: Any) -> bool:
    """A torch module or a ModelAdapter, told apart without importing torch."""
    from .prune.adapter import ModelAdapter

    return isinstance(model, ModelAdapter) or (
        hasattr(model, "named_modules") and type(model).__module__.split(".")[0] != "hwprune")


def torch_adapter(model, example_input=None, evaluate=None, finetune=None, loaders=None):
    """A :class:`~hwprune.prune.torch_model.TorchAdapter` for a torch module (or the
    adapter itself, passed through); :class:`InputError` naming what is expected."""
    from .prune.adapter import ModelAdapter

    if isinstance(model, ModelAdapter):
        if any(v is not None for v in (example_input, evaluate, finetune, loaders)):
            raise InputError("a ModelAdapter carries its own example input, evaluation and data; "
                             "pass example_input, evaluate, finetune and loaders to it, not here")
        return model
    if not _is_torch_model(model):
        from .prune.models import MODELS

        checks.check_text(model, "model", ", ".join(MODELS) + "; or " + TORCH_MODEL_ACCEPTED)
    from .prune.torch_model import TorchAdapter

    if example_input is None:
        raise InputError("a torch model needs example_input=, a tensor with a batch dimension "
                         "(e.g. torch.randn(1, 1, 28, 28)), to trace its layers")
    return TorchAdapter(model, example_input, evaluate=evaluate, finetune=finetune, loaders=loaders)


def _no_torch_args(model: str, **given) -> None:
    extra = [k for k, v in given.items() if v is not None]
    if extra:
        raise InputError(f"{', '.join(extra)} apply to a torch model, not to the reference model "
                         f"{model!r} (which brings its own data and training)")


def check_prune_request(model, criterion: str, granularity: str, density, schedule: str,
                        group: int | None, epochs: int, *, example_input=None, evaluate=None,
                        finetune=None, loaders=None) -> None:
    """Raise :class:`InputError` now for anything :func:`prune` would reject.

    ``model``: a reference model name, a torch module (with ``example_input`` and
    ``evaluate``/``finetune`` or ``loaders``; see :func:`prune`) or a ModelAdapter."""
    _check_prune(model, criterion, granularity, density, schedule, group, epochs,
                 dict(example_input=example_input, evaluate=evaluate, finetune=finetune,
                      loaders=loaders))


def _check_prune(model, criterion, granularity, density, schedule, group, epochs, torch_args):
    """The checks of :func:`check_prune_request`; returns the adapter of a torch model
    (None for a reference model name)."""
    from .prune import models
    from .prune.schedules import SCHEDULES, check_request

    adapter = None
    if not _is_model_name(model) and not _is_torch_model(model):
        checks.check_text(model, "model", ", ".join(models.MODELS) + "; or " + TORCH_MODEL_ACCEPTED)
    if _is_model_name(model):
        model = check_reference_model(model)
        _no_torch_args(model, **torch_args)
    criterion = checks.check_text(criterion, "criterion", ", ".join(criteria()))
    schedule = checks.check_text(schedule, "schedule", ", ".join(SCHEDULES))
    epochs = checks.check_count(epochs, "epochs")
    if not isinstance(granularity, Mapping):     # one scheme, or one per layer
        _scheme_arg(granularity, "granularity")
    if not _is_model_name(model):
        adapter = torch_adapter(model, **torch_args)
    check_request(adapter or models.build(model), criterion, granularity, density, schedule, group,
                  epochs)
    return adapter


def prune(model, criterion: str = "magnitude", granularity: str = "fine", density=0.1,
          schedule: str = "oneshot", group: int | None = None, epochs: int = 10, seed: int = 0, *,
          example_input=None, evaluate=None, finetune=None, loaders=None):
    """Prune a model; returns a :class:`~hwprune.prune.schedules.PruneResult` (see
    ``hwprune prune``).

    ``model``: a reference model name (``digits-mlp`` or ``digits-cnn``: trained here, a
    fresh copy pruned), or a ``torch.nn.Module`` pruned in place with
    ``torch.nn.utils.prune`` masks. A torch module needs ``example_input`` (a tensor
    with a batch dimension) and either the callbacks ``evaluate(model) -> float``
    (higher is better) and ``finetune(model, epochs)``, or ``loaders=(train_loader,
    test_loader)`` yielding ``(inputs, labels)`` batches (defaults: top-1 accuracy, SGD
    with momentum and cross-entropy; see :mod:`hwprune.prune.torch_model`). The
    data-driven criteria need the train loader; ``epochs=0`` needs no training."""
    from .prune import models
    from .prune.schedules import prune as run

    adapter = _check_prune(model, criterion, granularity, density, schedule, group, epochs,
                           dict(example_input=example_input, evaluate=evaluate, finetune=finetune,
                                loaders=loaders))
    epochs, seed = checks.check_count(epochs, "epochs"), check_seed(seed)
    if adapter is not None:
        return run(adapter, None, criterion, granularity, density, schedule, group, epochs, None, seed)
    spec = models.spec(model)
    trained, data = models.trained(model, seed)
    return run(trained, data, criterion, granularity, density, schedule, group, epochs,
               spec.recipe, seed)


def sensitivity(model, criterion: str = "magnitude", granularity: str = "fine",
                densities=None, group: int | None = None, seed: int = 0, *, beside=(),
                example_input=None, evaluate=None, loaders=None, workers: int = 0,
                scheduler: str | None = None) -> pd.DataFrame:
    """Accuracy against density, one layer pruned at a time (see ``hwprune sensitivity``);
    ``beside``: N:M patterns measured per layer next to ``granularity`` (``("2:4",)``);
    ``workers``/``scheduler``: run each (layer, scheme) on Dask (a torch model from
    :func:`user_adapter` too).

    ``model``: a reference model name, or a torch module with ``example_input`` and
    ``evaluate=`` or ``loaders=`` (as :func:`prune`; no training is done, the module's
    weights and masks are restored after each trial)."""
    from .prune import models
    from .studies.sensitivity import DEFAULT_DENSITIES
    from .studies.sensitivity import sensitivity as run

    adapter = _check_prune(model, criterion, granularity, 1.0, "oneshot", group, 0,
                           dict(example_input=example_input, evaluate=evaluate, finetune=None,
                                loaders=loaders))
    seed = check_seed(seed)
    densities = DEFAULT_DENSITIES if densities is None else checks.check_densities(densities)
    beside = tuple(_scheme_arg(b, "scheme beside") for b in beside)
    from .studies.engine import Runner

    workers, scheduler, preflight = _where([adapter], workers, scheduler)
    with Runner(workers, scheduler, preflight=preflight) as runner:   # starts while it trains
        if adapter is not None:
            return run(adapter, None, criterion, granularity, densities, group, seed, beside, runner)
        trained, data = models.trained(model, seed)
        return run(trained, data, criterion, granularity, densities, group, seed, beside, runner)


def granularity(model, dev: str | Path | DeviceProfile, tolerance: float = 0.01,
                seed: int = 0, profiles: Sequence[str | Path] = (), progress=None, *,
                example_input=None, evaluate=None, finetune=None, loaders=None, epochs: int | None = None):
    """Scalpel's per-layer choice for a model on a device; returns a
    :class:`~hwprune.studies.scalpel.ScalpelResult` (see ``hwprune granularity``).

    ``model``: a reference model name, or a ``torch.nn.Module`` with ``example_input``
    and ``evaluate=``/``finetune=`` callbacks or ``loaders=(train_loader, test_loader)``
    (as :func:`prune`; fine-tuning is needed: each trial retrains with AGP), or a
    ModelAdapter. A torch module is pruned in place and left with the final choice.
    ``epochs``: AGP epochs per trial (default
    :data:`~hwprune.studies.scalpel.SEARCH_EPOCHS`, 8)."""
    from .studies.scalpel import scalpel

    torch_args = dict(example_input=example_input, evaluate=evaluate, finetune=finetune, loaders=loaders)
    dev, tolerance = _device_arg(dev), check_tolerance(tolerance)
    seed, progress = check_seed(seed), _progress_arg(progress)
    epochs = None if epochs is None else checks.check_count(epochs, "epochs")
    model = _measured_model(model, torch_args, epochs)
    return scalpel(model, device(dev, profiles), tolerance, seed, progress, epochs)


def _measured_model(model, torch_args: dict, epochs: int | None):
    """A model Scalpel can measure: a reference model's name, or a torch module's adapter
    checked for AGP retraining; anything else is an error pointing to ``--density``."""
    from .prune import models

    if not _is_model_name(model) and _is_torch_model(model):
        from .prune.criteria import criterion as get_criterion
        from .studies.scalpel import SEARCH_EPOCHS

        adapter = torch_adapter(model, **torch_args)
        adapter.require(get_criterion("magnitude"), SEARCH_EPOCHS if epochs is None else epochs)
        return adapter
    model = checks.check_text(model, "model", ", ".join(models.MODELS) + "; or " + TORCH_MODEL_ACCEPTED)
    if model not in models.MODELS:
        raise UnknownNameError(
            "measuring how far each scheme prunes needs a trained model (a reference model: "
            + ", ".join(models.MODELS) + f", or {TORCH_MODEL_ACCEPTED}); for {model!r} give "
            "--density, the density you expect to reach, and hwprune chooses from the simulators alone")
    _no_torch_args(model, **torch_args)
    return model


def granularity_study(model, devices: Sequence[str | Path | DeviceProfile], tolerance: float = 0.01,
                      seed: int = 0, profiles: Sequence[str | Path] = (), progress=None, *,
                      example_input=None, evaluate=None, finetune=None, loaders=None,
                      epochs: int | None = None, workers: int = 0, scheduler: str | None = None):
    """Scalpel's per-layer choice for ``model`` on every device of ``devices``, as one
    study whose searches the devices share (:mod:`hwprune.studies.granularity_study`);
    a :class:`~hwprune.studies.granularity_study.GranularityStudy` whose ``layers`` has
    one row per device and layer. ``model`` and ``epochs`` as :func:`granularity` (a
    torch module is left as it came in); ``workers``, ``scheduler``: where the tasks run
    (:func:`study_runner`; no store: the study writes one table)."""
    from .studies.granularity_study import granularity_study as run

    torch_args = dict(example_input=example_input, evaluate=evaluate, finetune=finetune, loaders=loaders)
    devices, tolerance = _devices_arg(devices), check_tolerance(tolerance)
    seed, progress = check_seed(seed), _progress_arg(progress)
    epochs = None if epochs is None else checks.check_count(epochs, "epochs")
    profiles = checks.check_paths(profiles)
    model = _measured_model(model, torch_args, epochs)
    devs = [device(d, profiles) for d in devices]
    with study_runner("granularity", [model], devs, seed, epochs, workers, scheduler) as runner:
        return run(model, devs, tolerance, seed, epochs, runner, progress)


def recommend(net: str | Path | Network, dev: str | Path | DeviceProfile, density,
              profiles: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Per-layer granularity from the simulators at expected densities (any network,
    including .onnx files and imported PyTorch modules). ``density``: one density for
    fine, simd and node, or one per scheme (a mapping, or text such as
    ``"fine=0.1,simd=0.15,node=0.5"``, which also names the candidates); see
    :mod:`hwprune.studies.recommend` and :meth:`hwprune.studies.choice.Choice.table`."""
    from .prune import models
    from .studies.recommend import recommend as run
    from .studies.recommend import scheme_densities

    net, dev, density = _network_arg(net), _device_arg(dev), scheme_densities(density)
    if isinstance(net, str) and net in models.MODELS:
        net = models.to_network(models.build(net))
    return run(network(net), device(dev, profiles), density)


def recommend_densities(density) -> str:
    """``density`` as :func:`recommend` reads it, in words ("assuming fine reaches 0.1,
    ..."); an :class:`InputError` if it is not accepted."""
    from .studies.recommend import describe, scheme_densities

    return describe(scheme_densities(density))


def recommend_densities_arg(text: str) -> str:
    """``text`` if :func:`recommend` accepts it as ``density`` (the CLI's check)."""
    recommend_densities(text)
    return text


def study_runner(verb: str, names, devices: Sequence[DeviceProfile], seed: int,
                 epochs: int | None, workers: int = 0, scheduler: str | None = None,
                 store: str | Path | None = None, force: bool = False):
    """Where a study's tasks run and the store that keeps them
    (:class:`~hwprune.studies.engine.Runner`): ``workers`` local Dask processes (0: this
    process), or the Dask ``scheduler`` at an address; ``store``: a directory whose
    finished points a re-run takes instead of running them again (another study
    definition there is an error unless ``force``)."""
    from .studies import tradeoff as T
    from .studies.engine import Runner, Store

    workers, scheduler, preflight = _where(names, workers, scheduler)
    definition = {
        "verb": verb, "models": [n if isinstance(n, str) else f"torch:{n.name}" for n in names],
        "devices": {d.id: hashlib.sha1(repr(d).encode()).hexdigest()[:16] for d in devices},
        "seed": seed, "epochs": epochs, "densities": list(T.DENSITIES),
        "tolerances": list(T.TOLERANCES), "budgets": list(T.BUDGETS)}
    return Runner(workers, scheduler,
                  Store(store, definition, force) if store is not None else None, preflight)


def _where(models, workers: int, scheduler: str | None) -> tuple[int, str | None, tuple]:
    """``(workers, scheduler, preflight)`` of a study of ``models`` (names or adapters),
    checked: not both; on workers, every torch model must come from ``MODULE:FACTORY``
    specs (:func:`user_adapter`), and every worker must import them (the preflight)."""
    workers = checks.check_count(workers, "workers")
    if scheduler is not None:
        scheduler = checks.check_text(scheduler, "scheduler", "a Dask scheduler address such as "
                                                              "tcp://127.0.0.1:8786")
        if workers:
            raise InputError("give --workers (a local cluster) or --scheduler (a running one), "
                             "not both")
    preflight = []
    if workers or scheduler:
        for model in models:
            if getattr(model, "kind", None) != "torch":
                continue
            if model.source is None:
                raise InputError(
                    f"your PyTorch model {model.name} was handed over in memory, and a worker "
                    "process cannot build it: give it as --model MODULE:FACTORY --data "
                    "MODULE:FACTORY (API: hwprune.api.user_adapter), or run the study in this "
                    "process (workers 0, no scheduler)")
            preflight.append(model.source.importable)
    return workers, scheduler, tuple(preflight)


def user_adapter(model: str, data: str | None = None, recipe=None):
    """The user's model and data from ``MODULE:FACTORY`` specs (``--model``, ``--data``)
    as a torch adapter that a study's worker processes can build again: pass it as the
    ``model`` of :func:`tradeoff`, :func:`report_study`, :func:`granularity_study` or
    :func:`sensitivity` with ``workers=`` or ``scheduler=``. Importing runs the modules'
    code: name only files you trust. ``recipe``: a
    :class:`~hwprune.prune.torch_model.TorchRecipe` (default: its defaults)."""
    from .prune.torch_model import from_source
    from .workload.factory import UserSource

    return from_source(UserSource.of(model, data), recipe)


def tradeoff(model, devices: Sequence[str | Path | DeviceProfile], seed: int = 0,
             progress=None, profiles: Sequence[str | Path] = (), *, example_input=None,
             evaluate=None, finetune=None, loaders=None, epochs: int | None = None,
             workers: int = 0, scheduler: str | None = None, store: str | Path | None = None,
             force: bool = False, runner=None):
    """Every pruning policy on ``model`` swept over density and ``devices``, with Pareto
    fronts: a :class:`~hwprune.studies.tradeoff.TradeoffStudy`.

    ``model``: a reference model name, or a ``torch.nn.Module`` with ``example_input``
    and ``evaluate=``/``finetune=`` or ``loaders=`` (as :func:`granularity`), or a
    ModelAdapter. A torch module's points each start from its state at the call; it is
    left as it came in. Energy-aware points: reference models only. ``epochs``:
    fine-tuning per point (default :data:`~hwprune.studies.tradeoff.EPOCHS`, 8).
    ``workers``, ``scheduler``, ``store``, ``force``: where the points run and where
    they are kept (:func:`study_runner`; docs/scaling.md); or ``runner``, one made by
    :func:`study_runner` that the caller keeps open (the command draws the figures on
    its cluster)."""
    from .studies.tradeoff import study

    torch_args = dict(example_input=example_input, evaluate=evaluate, finetune=finetune, loaders=loaders)
    devices, seed, progress = _devices_arg(devices), check_seed(seed), _progress_arg(progress)
    profiles = checks.check_paths(profiles)
    epochs = None if epochs is None else checks.check_count(epochs, "epochs")
    if not _is_model_name(model) and _is_torch_model(model):
        from .prune.criteria import criterion as get_criterion
        from .studies.tradeoff import EPOCHS

        model = torch_adapter(model, **torch_args)
        model.require(get_criterion("magnitude"), EPOCHS if epochs is None else epochs)
    else:
        model = check_reference_model(model)
        _no_torch_args(model, **torch_args)
    devices = [device(d, profiles) for d in devices]
    if runner is not None:
        _runner_alone(workers, scheduler, store)
        return study([model], devices, seed, progress, epochs, runner)
    with study_runner("tradeoff", [model], devices, seed, epochs, workers, scheduler, store,
                      force) as runner:       # the cluster starts while the model trains
        return study([model], devices, seed, progress, epochs, runner)


def _runner_alone(workers, scheduler, store) -> None:
    if workers or scheduler is not None or store is not None:
        raise InputError("give runner= or workers=/scheduler=/store=, not both (the runner "
                         "says where the study runs)")


def tradeoff_steps(model, devices: Sequence[DeviceProfile], *, loaders=None) -> int:
    """Progress messages :func:`tradeoff` sends (``model``: a reference model name, a
    ModelAdapter, or a torch module with the ``loaders`` given to :func:`tradeoff`, if
    any: energy-aware points need its train loader)."""
    from .studies.tradeoff import planned_steps

    if not _is_model_name(model) and _is_torch_model(model):
        from .prune.adapter import ModelAdapter

        if not isinstance(model, ModelAdapter):
            has_train = isinstance(loaders, (tuple, list)) and len(loaders) == 2 and loaders[0] is not None
            return planned_steps(model, devices, energy_aware_points=has_train)
        return planned_steps(model, devices)
    return planned_steps(check_reference_model(model), devices)


def energy_aware(model, dev: str | Path | DeviceProfile, budget: float = 0.01, seed: int = 0,
                 epochs: int = 8, progress=None, profiles: Sequence[str | Path] = (), *,
                 example_input=None, evaluate=None, finetune=None, loaders=None):
    """Energy-aware pruning (Yang et al.) of ``model`` for ``dev`` within an accuracy
    ``budget`` (a fraction); returns an
    :class:`~hwprune.studies.energy_aware.EnergyAwareResult`.

    ``model``: a reference model name, or a ``torch.nn.Module`` with ``example_input``
    and ``loaders=(train_loader, test_loader)`` (the re-fit samples the train loader;
    ``evaluate=``/``finetune=`` callbacks may replace the defaults), pruned in place; or
    a ModelAdapter."""
    from .studies.energy_aware import energy_aware as run

    torch_args = dict(example_input=example_input, evaluate=evaluate, finetune=finetune, loaders=loaders)
    dev, budget = _device_arg(dev), check_tolerance(budget, "the accuracy budget")
    seed, progress = check_seed(seed), _progress_arg(progress)
    epochs = checks.check_count(epochs, "epochs")
    if not _is_model_name(model) and _is_torch_model(model):
        from .prune.criteria import criterion as get_criterion

        model = torch_adapter(model, **torch_args)
        model.require(get_criterion("magnitude"), epochs)
        model.sample_inputs(1, seed)                 # an InputError now if it has no train loader
    else:
        model = check_reference_model(model)
        _no_torch_args(model, **torch_args)
    return run(model, device(dev, profiles), budget, seed, epochs, progress)


def report_study(devices: Sequence[str | Path | DeviceProfile], seed: int = 0, progress=None,
                 profiles: Sequence[str | Path] = (), model=None, *, example_input=None,
                 evaluate=None, finetune=None, loaders=None, epochs: int | None = None,
                 workers: int = 0, scheduler: str | None = None, store: str | Path | None = None,
                 force: bool = False, runner=None):
    """The study behind ``hwprune report`` (a
    :class:`~hwprune.studies.report_study.ReportStudy`): the reference models, or
    ``model``, a ``torch.nn.Module`` with ``example_input`` and ``evaluate=``/
    ``finetune=`` or ``loaders=`` (as :func:`granularity`), or a ModelAdapter. A torch
    module is pruned in place for each search and point and left as it came in.
    ``epochs``: fine-tuning per search trial and per trade-off point (default: each
    policy's own). ``workers``, ``scheduler``, ``store``, ``force``, ``runner``: as
    :func:`tradeoff`."""
    from .studies.report_study import report_study as run

    devices, seed, progress = _devices_arg(devices), check_seed(seed), _progress_arg(progress)
    profiles = checks.check_paths(profiles)
    epochs = None if epochs is None else checks.check_count(epochs, "epochs")
    torch_args = dict(example_input=example_input, evaluate=evaluate, finetune=finetune, loaders=loaders)
    if model is None:
        extra = [k for k, v in torch_args.items() if v is not None]
        if extra:
            raise InputError(f"{', '.join(extra)} apply to a torch model given as model=; without "
                             "one the report runs the reference models, which bring their own data")
    names = report_models(model, **torch_args, epochs=epochs)
    devices = [device(d, profiles) for d in devices]
    if runner is not None:
        _runner_alone(workers, scheduler, store)
        return run(devices, names, seed, progress, epochs, runner)
    with study_runner("report", names, devices, seed, epochs, workers, scheduler, store,
                      force) as runner:       # the cluster starts while the models train
        return run(devices, names, seed, progress, epochs, runner)


def report_models(model=None, *, example_input=None, evaluate=None, finetune=None, loaders=None,
                  epochs: int | None = None) -> tuple:
    """The models :func:`report_study` studies (its ``names``, for :func:`study_runner`):
    the reference models' names, or ``model`` checked as an adapter."""
    from .prune.models import MODELS

    if model is None:
        return tuple(MODELS)
    torch_args = dict(example_input=example_input, evaluate=evaluate, finetune=finetune, loaders=loaders)
    epochs = None if epochs is None else checks.check_count(epochs, "epochs")
    return (_report_adapter(model, torch_args, epochs),)


def _report_adapter(model, torch_args: dict, epochs: int | None):
    from .prune.criteria import criterion as get_criterion
    from .studies.scalpel import SEARCH_EPOCHS
    from .studies.tradeoff import EPOCHS

    adapter = torch_adapter(model, **torch_args)
    adapter.require(get_criterion("magnitude"), max(EPOCHS, SEARCH_EPOCHS) if epochs is None else epochs)
    return adapter


def report_steps(devices: Sequence[DeviceProfile], model=None, *, loaders=None) -> int:
    """Progress messages :func:`report_study` sends (``model``: None for the reference
    models, an adapter, or a torch module with the ``loaders`` given to
    :func:`report_study`, if any)."""
    from .prune.adapter import ModelAdapter
    from .prune.models import MODELS
    from .studies.report_study import report_steps as steps

    if model is None:
        return steps(tuple(MODELS), devices)
    if isinstance(model, ModelAdapter):
        return steps((model,), devices)
    from .studies import report_study as R
    from .studies import tradeoff as T

    has_train = isinstance(loaders, (tuple, list)) and len(loaders) == 2 and loaders[0] is not None
    return (T.planned_steps(model, devices, has_train, sorted({*T.TOLERANCES, R.TOLERANCE}))
            + 2 * len(devices))


def write_report(out: str | Path, study, minutes: float | None = None,
                 force: bool = False, runner=None) -> Path:
    """Render a report study into directory ``out``; returns ``index.html``'s path. A
    non-empty directory that hwprune did not make is refused unless ``force``.
    ``runner``: an open :func:`study_runner` whose cluster draws the figures."""
    from .report.html_report import render_report

    return render_report(out, study, minutes, force=force,
                         draw=None if runner is None else runner.map)


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


# -- the user's own torch model and data (--model / --data MODULE:FACTORY) ----------------
def user_model(spec: str):
    """Import ``MODULE`` and call ``FACTORY()`` of a ``--model MODULE:FACTORY`` spec; a
    checked :class:`~hwprune.workload.factory.UserModel`. Importing runs the module's
    code: name only files you trust."""
    from .workload.factory import load_model

    return load_model(spec)


def user_data(spec: str):
    """The same for ``--data MODULE:FACTORY``: a checked
    :class:`~hwprune.workload.factory.UserData` (loaders or callbacks)."""
    from .workload.factory import load_data

    return load_data(spec)


def check_trainable(verb: str, network) -> None:
    """An :class:`InputError` if ``network`` is an ``.onnx`` file, which has no training,
    given to a verb that trains or evaluates."""
    from .workload.factory import check_trainable as check

    check(verb, network)


def is_onnx_path(network) -> bool:
    """Whether a NETWORK argument names an ``.onnx`` file (by its suffix)."""
    from .workload.factory import is_onnx_path as check

    return check(network)


def torch_network(module, example_input) -> Network:
    """A torch module as an hwprune :class:`Network` (``from_torch``), for costing."""
    from .workload.torch_import import from_torch

    return from_torch(module, example_input).network


def torch_state_dict_bytes(module) -> bytes:
    """A pruned torch module's ``state_dict`` (masks made permanent), as ``torch.save``
    writes it (see :mod:`hwprune.workload.torch_export`)."""
    from .workload.torch_export import state_dict_bytes

    return state_dict_bytes(module)


def torch_onnx_bytes(module, example_input) -> bytes:
    """A pruned torch module exported to ONNX (see :mod:`hwprune.workload.torch_export`)."""
    from .workload.torch_export import onnx_bytes

    return onnx_bytes(module, example_input)


def removes_units(scheme_name: str) -> bool:
    """Whether a registered scheme removes whole units (node, filter pruning)."""
    from .schemes import scheme

    return scheme(scheme_name).removes_units


def torch_compact(adapter, example_input, round_to: int | None = None):
    """A physically smaller copy of a node- or filter-pruned torch model: each prunable
    layer but the last keeps the units with any weight left (its whole coupled group
    with it; see :func:`hwprune.workload.torch_import.compact`), their counts rounded
    up to a multiple of ``round_to`` if given. ``adapter``: the pruned model's
    :class:`~hwprune.prune.torch_model.TorchAdapter` (``PruneResult.adapter``)."""
    import numpy as np

    from .workload.torch_import import compact

    layers = adapter.prunable()[:-1]            # the last layer's units are the outputs
    keep = {lay.name: np.asarray(lay.mask, bool).reshape(lay.mask.shape[0], -1).any(axis=1)
            for lay in layers}
    return compact(adapter.module, keep, example_input, round_to=round_to)


def torch_data_args(data) -> dict:
    """The keyword arguments :func:`prune` and :func:`sensitivity` take for a
    :class:`~hwprune.workload.factory.UserData`: ``loaders=`` or ``evaluate=``/``finetune=``."""
    return data.adapter_args()
