"""The ``hwprune`` command: one verb per job, every table in table/csv/json.

Exit status: 0 on success, 2 for bad input (unknown name, malformed file, value out
of range, an output location that cannot be written) with one line
``hwprune: error: ...`` on stderr, 1 for anything else, 128 + the signal's number after
SIGTERM or SIGHUP (temporary files of writes in progress are removed first), 130 after
Ctrl-C. Every output location (``--out``, ``--plot``, an output directory) is checked
before any work starts; see docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Sequence

import pandas as pd

from . import api
from .errors import HwpruneError, InputError
from .report.output import (
    FORMATS,
    STDOUT,
    OutputDirectory,
    check_out_dir,
    check_out_path,
    remove_in_progress,
    render,
    write_atomic,
)

PROG = "hwprune"


class UsageError(InputError):
    """The command line itself is wrong (unknown verb or option, missing argument)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one ``hwprune: error:`` line and exit 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _add_table_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="output format (default: table); json is a list of row objects")
    p.add_argument("--out", metavar="FILE",
                   help="write the table to FILE (atomically; - is standard output; a "
                        "character device or FIFO is written through) instead of standard "
                        "output")


def _add_profiles_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profiles", metavar="DIR", action="append", default=[],
                   help="add a directory of device-profile TOML files (repeatable; "
                        "HWPRUNE_PROFILES is read too)")


NETWORK_HELP = "built-in network name (see 'hwprune networks') or path to an .onnx file"


def _add_network_device(p: argparse.ArgumentParser, device_help: str = "device id or path to a "
                        ".toml profile", optional_network: bool = False) -> None:
    """The NETWORK argument and ``--device`` that most verbs take."""
    p.add_argument("network", metavar="NETWORK", help=NETWORK_HELP,
                   **({"nargs": "?"} if optional_network else {}))
    p.add_argument("--device", required=True, metavar="DEVICE", help=device_help)


def _add_sweep_options(p: argparse.ArgumentParser, devices: str, out_default: str) -> None:
    """``--devices``, ``--seed`` and ``--out DIR`` of the sweeping verbs."""
    p.add_argument("--devices", default=devices, help=f"comma-separated (default: {devices})")
    p.add_argument("--seed", type=_seed, default=0, help="seed (default: 0)")
    p.add_argument("--out", dest="out_dir", metavar="DIR", default=out_default,
                   help=f"output directory (default: {out_default}); its store/ keeps every "
                        "finished point, and the same command again resumes from it")
    p.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="run the points on a local Dask cluster of N processes (0: in this "
                        "process; default: one per core for the reference models, 0 for your "
                        "own model)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run the points on a running Dask cluster (tcp://HOST:PORT); every "
                        "worker needs hwprune installed (docs/scaling.md)")
    _add_force_option(p)
    _add_profiles_option(p)


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of worker processes, got "
                                         f"{text!r}") from None
    if not 0 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be from 0 to 256, got {value}")
    return value


def _study_options(args: argparse.Namespace, out, own_model: bool) -> dict:
    """The engine's options of a sweeping verb: workers (default: the usable cores for
    the reference models, 0 for the user's model), scheduler, and the store in ``out``."""
    workers = args.workers
    if workers is None:
        workers = 0 if own_model or args.scheduler else _cores()
        workers = 0 if workers < 2 else workers
    return dict(workers=workers, scheduler=args.scheduler, store=out / "store", force=args.force)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                     # not on Linux
        return os.cpu_count() or 1


def _add_force_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty output directory that hwprune did not make "
                        "(files of the same name are replaced)")


def _emit(df: pd.DataFrame, args: argparse.Namespace) -> None:
    text = render(df, args.format)
    if args.out:
        write_atomic(args.out, text)
        if args.out != STDOUT:
            print(f"wrote {args.out} ({len(df)} rows)", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _cmd_devices(args: argparse.Namespace) -> None:
    _emit(api.devices(args.profiles), args)


def _cmd_device(args: argparse.Namespace) -> None:
    _emit(api.device_detail(args.device, args.profiles), args)


def _cmd_networks(args: argparse.Namespace) -> None:
    _emit(api.networks(), args)


def _cmd_show(args: argparse.Namespace) -> None:
    _emit(api.show(args.network), args)


def _cmd_energy(args: argparse.Namespace) -> None:
    from .report.plots import check_plot_path, plot_energy

    if args.plot:
        if args.detail:
            raise UsageError("--plot draws the per-layer table; leave out --detail")
        check_plot_path(args.plot)
    dev = api.device(args.device, args.profiles)
    net = api.network(args.network)
    kwargs = dict(densities=args.densities, batch=args.batch, dataflow=args.dataflow,
                  weight_format=args.weight_format)
    df = (api.energy_detail if args.detail else api.energy)(net, dev, **kwargs)
    if args.densities and args.weight_format is None and dev.sparsity.weight_format == "dense":
        print(f"{PROG}: note: {dev.id} stores pruned weights dense by default, so the zeros "
              "are still moved (and computed unless the device gates them); give "
              "--weight-format csr|simd-group|rle|2:4|block to store them sparse", file=sys.stderr)
    if args.detail:
        _emit(df, args)
        return
    _fit_warning(df, net.name, dev)
    if args.plot:       # drawn first: a failure leaves no table behind
        plot_energy(df, api.level_columns(dev), f"{net.name} on {dev.id}, batch {args.batch}",
                    dev.energy_unit, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    _emit(df, args)
    if args.format == "table" and not args.out:
        total = df["energy_pj"].sum()     # in dev.energy_unit, whatever the column name says
        amount = (f"{total:.4g} {dev.energy_unit} (normalized energies)" if dev.energy_normalized
                  else f"{total:.4g} pJ = {total / dev.compute.mac_energy_pj:.4g} MAC energies")
        print(f"total {amount} over {len(df)} layers; {total / df['macs'].sum():.3g} "
              f"{dev.energy_unit} per MAC "
              f"(dataflow {df['dataflow'].iloc[0]}, weights {df['weight_format'].iloc[0]})")


def _cmd_bench_kernels(args: argparse.Namespace) -> None:
    for option, value in (("--storage", args.storage), ("--shapes", args.shapes)):
        if value is not None and not value.replace(",", "").strip():
            raise UsageError(f"{option} needs a comma-separated list; got {value!r}")

    def names(value):
        return [t.strip() for t in value.split(",") if t.strip()] if value else None

    df, summary, bandwidth = api.bench_kernels(names(args.storage), names(args.shapes), args.quick,
                                               args.repeats)
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr)
    _emit(df, args)
    if args.format == "table" and not args.out:
        print("\nbreak-even density (highest density faster than one-thread BLAS dense):")
        sys.stdout.write(render(summary, "table"))
        print(f"\nsingle-thread streaming read bandwidth: {bandwidth:.1f} GB/s")


def _cmd_cachesim(args: argparse.Namespace) -> None:
    dev = api.device(args.device, args.profiles)
    if args.trace:
        if args.network or args.layer or args.scheme or args.density is not None \
                or args.seed is not None:
            raise UsageError("--trace takes no NETWORK, --layer, --scheme, --density or --seed")
        _emit(api.cachesim_trace(args.trace, dev, not args.pycachesim_lru), args)
        return
    missing = [opt for opt, value in (("NETWORK", args.network), ("--layer", args.layer),
                                      ("--scheme", args.scheme), ("--density", args.density))
               if value is None]
    if missing:
        raise UsageError("give --trace FILE.npy, or NETWORK with --layer, --scheme and "
                         f"--density (missing: {', '.join(missing)})")
    table = api.cachesim_layer(args.network, args.layer, dev, args.scheme, args.density,
                               args.seed or 0, not args.pycachesim_lru)
    _emit(table, args)


def _fit_warning(df: pd.DataFrame, name: str, dev) -> None:
    """One stderr line when some layers' tensors do not fit the device's memories."""
    misfits = int((~df["fits_memory"].astype(bool)).sum())
    if misfits:
        print(f"{PROG}: warning: {misfits} of {len(df)} layers of {name} do not fit {dev.id}'s "
              "memories (weights, inputs and outputs together; the fits_memory column names "
              "them): their costs assume they fit, and spilling is not modelled", file=sys.stderr)


def _cmd_latency(args: argparse.Namespace) -> None:
    dev = api.device(args.device, args.profiles)
    net = api.network(args.network)
    df = api.latency(net, dev, args.scheme, args.density, batch=args.batch)
    _fit_warning(df, net.name, dev)
    _emit(df, args)
    if args.format == "table" and not args.out:
        pruned = df.loc[df["scheme"] != "dense", "density"]    # an N:M scheme's own N / M
        density = pruned.max() if len(pruned) else args.density
        print(f"total {df['seconds'].sum() * 1e3:.4g} ms on {dev.id} ({dev.device_class} model), "
              f"scheme {args.scheme}" + ("" if args.scheme == "dense" else f" at density {density:g}")
              + f", batch {args.batch}")


def _cmd_breakeven(args: argparse.Namespace) -> None:
    from .report.plots import check_plot_path, plot_breakeven

    if args.plot:
        check_plot_path(args.plot)
    schemes = None
    if args.formats is not None:
        schemes = tuple(s.strip() for s in args.formats.split(",") if s.strip())
        if not schemes:
            raise UsageError(f"--schemes needs a comma-separated list; got {args.formats!r}")
    dev = api.device(args.device, args.profiles)
    net = api.network(args.network)
    table = api.breakeven(net, dev, schemes, batch=args.batch)
    if args.plot:
        plot_breakeven(api.latency_curves(net, dev, schemes, batch=args.batch),
                       f"{net.name} on {dev.id}, batch {args.batch}: latency against density",
                       args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    shown = table.copy()
    if args.format == "table":
        shown["breakeven_density"] = [("never" if pd.isna(v) else f"{v:.3f}")
                                      for v in shown["breakeven_density"]]
    _emit(shown, args)
    if args.format == "table" and not args.out:
        print("breakeven_density: below it the scheme is faster than dense; 'never': not "
              f"above 1% density; batch {args.batch}")


def _cmd_calibrate(args: argparse.Namespace) -> None:
    text = api.calibrate(lambda step: print(f"calibrating: {step} ...", file=sys.stderr),
                         quick=args.quick)
    if args.out:
        write_atomic(args.out, text)
        if args.out != STDOUT:
            print(f"wrote {args.out} (use it as --device {args.out})", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _user_inputs(args: argparse.Namespace, needs_training: bool, load: bool = True):
    """``(UserModel, UserData)`` of ``--model``/``--data`` (None, None without
    ``--model``), after checking that exactly one of NETWORK and ``--model`` is given and
    that a verb that trains has what it needs. Importing the user's module runs its
    code; the output locations were checked before (``main``)."""
    positional = getattr(args, "model", None)
    if positional is not None and args.torch_model:
        raise UsageError("give MODEL or --model MODULE:FACTORY, not both")
    if args.torch_data and not args.torch_model:
        raise UsageError("--data needs --model MODULE:FACTORY")
    if positional is None and not args.torch_model:
        raise UsageError("give MODEL (a reference model) or --model MODULE:FACTORY (your "
                         "PyTorch model) with --data MODULE:FACTORY")
    if needs_training and positional is not None:
        if args.verb == "granularity" and api.is_onnx_path(positional):
            raise UsageError("granularity measures accuracy, and an .onnx file has no training: "
                             "give --density D to choose from the simulators alone, or a torch "
                             "model with --model MODULE:FACTORY and --data MODULE:FACTORY")
        api.check_trainable(args.verb, positional)       # an .onnx file: one line, exit 2
    if not args.torch_model:
        return None, None
    if needs_training and not args.torch_data:
        raise UsageError(f"{args.verb} with --model needs --data MODULE:FACTORY (loaders, or "
                         "the evaluate/finetune callbacks)")
    if not load:
        return None, None
    user = api.user_model(args.torch_model)
    return user, (api.user_data(args.torch_data) if args.torch_data else None)


def _study_model(args: argparse.Namespace):
    """``(model, name, own)`` of a study verb: the reference model named, or the user's
    model and data as an adapter built from the ``--model``/``--data`` specs, which a
    study's worker processes build again (``own``: whether it is the user's)."""
    _user_inputs(args, needs_training=True, load=False)
    if not args.torch_model:
        return args.model, args.model, False
    adapter = api.user_adapter(args.torch_model, args.torch_data)
    return adapter, adapter.name, True


def _model_to_prune(args: argparse.Namespace):
    """``(user, model, name, torch_args)``: the reference model named, or the user's
    torch module with the API's keyword arguments for its example input and data."""
    user, data = _user_inputs(args, needs_training=True)
    if user is None:
        return None, args.model, args.model, {}
    return user, user.module, user.name, _torch_args(user, data)


def _cmd_prune(args: argparse.Namespace) -> None:
    import io
    import json
    from pathlib import Path

    import numpy as np

    user, model, name, torch_args = _model_to_prune(args)
    api.check_prune_request(model, args.criterion, args.granularity, args.density,
                            args.schedule, args.group, args.epochs, **torch_args)
    compacts = user is not None and api.removes_units(args.granularity)
    if args.round_to is not None and not (compacts and args.out_dir):
        raise UsageError("--round-to rounds the channels of the compacted model that prune --out "
                         "writes for node or filter pruning of a torch model (--model); give "
                         "--granularity node or filter, --model and --out")
    if args.out_dir:
        check_out_dir(args.out_dir, args.force, "prune")    # again: main checked it before
    print(f"{'training' if user is None else 'pruning'} {name} (seed {args.seed}) ...",
          file=sys.stderr)
    result = api.prune(model, args.criterion, args.granularity, args.density, args.schedule,
                       args.group, args.epochs, args.seed, **torch_args)
    kept, total = result.adapter.weight_count()
    sys.stdout.write(render(result.layers, args.format))
    print(f"accuracy: {result.accuracy_before:.4f} dense -> {result.accuracy_after:.4f} pruned "
          f"({'test set, fraction' if user is None else 'your evaluation'}); weights kept "
          f"{kept}/{total} ({kept / total:.3f})")
    if args.out_dir:
        out = Path(args.out_dir)
        summary = {"model": name if user is None else args.torch_model, **result.settings,
                   "accuracy_before": result.accuracy_before, "accuracy_after": result.accuracy_after,
                   "weights_kept": kept, "weights": total,
                   "layers": json.loads(result.layers.to_json(orient="records"))}
        if user is None:
            buf = io.BytesIO()
            np.savez_compressed(buf, **result.model.state())
            files = {"weights.npz": buf.getvalue()}
        else:
            files = {"model.pt": api.torch_state_dict_bytes(result.model),
                     "model.onnx": api.torch_onnx_bytes(result.model, user.example_input)}
            if compacts:        # node/filter: the physically smaller model too
                small = api.torch_compact(result.adapter, user.example_input, args.round_to)
                files["model-compact.pt"] = api.torch_state_dict_bytes(small)
                files["model-compact.onnx"] = api.torch_onnx_bytes(small, user.example_input)
        files["summary.json"] = json.dumps(summary, indent=2) + "\n"
        with OutputDirectory(out, args.force, "prune") as stage:     # every file or none
            for file_name, content in files.items():
                write_atomic(stage / file_name, content)
        print("wrote " + ", ".join(str(out / f) for f in files), file=sys.stderr)


def _cmd_sensitivity(args: argparse.Namespace) -> None:
    from .report.plots import check_plot_path, plot_sensitivity

    if args.plot:
        check_plot_path(args.plot)
    model, name, _ = _study_model(args)
    api.check_prune_request(model, args.criterion, args.granularity, 1.0, "oneshot",
                            args.group, 0)
    beside = tuple(b.strip() for b in (args.beside or "").split(",") if b.strip())
    table = api.sensitivity(model, args.criterion, args.granularity, args.densities,
                            args.group, args.seed, beside=beside, workers=args.workers,
                            scheduler=args.scheduler)
    if args.plot:
        plot_sensitivity(table, f"{name}: {args.criterion}, {args.granularity}"
                         + "".join(f" and {b}" for b in beside) + ", one layer pruned at a time "
                         "(no retraining)", args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    _emit(table, args)


def _torch_args(user, data) -> dict:
    """The API's keyword arguments for the user's torch model and data."""
    return {"example_input": user.example_input, **api.torch_data_args(data)}


def _cmd_granularity(args: argparse.Namespace) -> None:
    devices = [d.strip() for d in args.device.split(",") if d.strip()]
    if not devices:
        raise UsageError(f"--device needs a device or a comma-separated list; got {args.device!r}")
    if len(set(devices)) != len(devices):
        raise UsageError(f"--device names {next(d for d in devices if devices.count(d) > 1)!r} twice")
    if args.density is not None:
        user, _ = _user_inputs(args, needs_training=False)
        if args.workers or args.scheduler:
            raise UsageError("--workers and --scheduler run measured studies; with --density "
                             "granularity is simulated only and runs here")
        net = args.model if user is None else api.torch_network(user.module, user.example_input)
        tables = []
        for dev in devices:
            table = api.recommend(net, dev, args.density, args.profiles)
            if len(devices) > 1:
                table.insert(0, "device", api.device(dev, args.profiles).id)
            tables.append(table)
        table = pd.concat(tables, ignore_index=True)
        shown = table if args.format != "table" else table[
            (["device"] if len(devices) > 1 else [])
            + ["layer", "kind", "scheme", "density", "inputs_kept", "speedup", "energy_ratio", "reason"]]
        _emit(shown, args)
        if args.format == "table" and not args.out:
            print(f"from the simulators alone, {api.recommend_densities(args.density)}; "
                  "speedup = simulated dense latency / chosen, energy_ratio = chosen / dense energy")
        return
    model, _, _ = _study_model(args)
    # Progress: the engine's bar on a terminal, nothing otherwise.
    study = api.granularity_study(model, devices, args.tolerance, args.seed, args.profiles,
                                  workers=args.workers, scheduler=args.scheduler)
    layers = study.layers
    if args.format != "table":
        _emit(layers if len(devices) > 1 else layers.drop(columns=["device"]), args)
    else:
        columns = ["layer", "kind", "scheme", "density", "inputs_kept", "speedup", "energy_ratio",
                   "reason"]
        _emit(layers[(["device"] if len(devices) > 1 else []) + columns], args)
    if args.format == "table" and not args.out:
        for device_id, part in layers.groupby("device", sort=False):
            first = part.iloc[0]
            print(f"{first['model']} on {device_id} (SIMD group g = {first['group']}): accuracy "
                  f"{first['dense_accuracy']:.4f} dense -> {first['final_accuracy']:.4f} with "
                  f"these choices (tolerance {args.tolerance})")
        print("speedup = simulated dense latency / chosen, energy_ratio = simulated chosen energy "
              "/ dense")
    if study.failures:              # the devices whose choice finished are shown above
        raise HwpruneError("granularity: " + study.summary)


def _device_list(args: argparse.Namespace):
    names = [d.strip() for d in args.devices.split(",") if d.strip()]
    if not names:
        raise UsageError(f"--devices needs a comma-separated list; got {args.devices!r}")
    return [api.device(d, args.profiles) for d in names]


def _out_dir(args: argparse.Namespace):
    return check_out_dir(args.out_dir, args.force, args.verb)


def _cmd_tradeoff(args: argparse.Namespace) -> None:
    from .report.tradeoff_files import write_tradeoff

    model, name, own = _study_model(args)
    if not own:
        model = api.check_reference_model(model)
    devices = _device_list(args)
    out = _out_dir(args)
    # The cluster starts now, in the background, and stays up to draw the plots.
    with api.study_runner("tradeoff", [model], devices, args.seed, None,
                          **_study_options(args, out, own)) as runner:
        result = api.tradeoff(model, devices, args.seed, runner=runner)
        write_tradeoff(out, result.points, result.versus, [d.id for d in devices],
                       f"{name} on {{device}}", force=args.force, draw=runner.map)
    sys.stdout.write(render(result.versus, args.format))
    print(f"wrote {out / 'tradeoff.csv'}, scalpel-vs-traditional.csv and "
          f"{len(devices)} plots (tradeoff-DEVICE.png); {result.summary}", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> None:
    import time


    model, _, own = _study_model(args) if args.torch_model or args.torch_data else (None, "", False)
    devices = _device_list(args)
    out = _out_dir(args)
    start = time.perf_counter()
    # The cluster starts now, in the background (while the reference models train), and
    # stays up to draw the figures.
    with api.study_runner("report", api.report_models(model), devices, args.seed, None,
                          **_study_options(args, out, own)) as runner:
        study = api.report_study(devices, args.seed, None, (), model, runner=runner)
        page = api.write_report(out, study, (time.perf_counter() - start) / 60,
                                force=args.force, runner=runner)
    print(f"wrote {page} (open it in a browser); {study.tradeoff.summary}", file=sys.stderr)


def _checked(check, *args):
    """An argparse type from one of the package's value checks (:mod:`hwprune.checks`,
    through the API): the same error text on the command line as in Python."""
    def parse(text: str):
        try:
            return check(text, *args)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


_tolerance = _checked(api.check_tolerance)
_scheme = _checked(api.check_scheme)
_density = _checked(api.check_density)


def _densities(text: str) -> tuple[float, ...]:
    values = tuple(_density(t.strip()) for t in text.split(",") if t.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"needs a comma-separated list of densities; got "
                                         f"{text!r} (leave the option out for the defaults)")
    return values


def _int_between(low: int, high: int | None = None, what: str = "value"):
    """An argparse type: an integer from ``low`` to ``high`` (no upper bound if None)."""
    return _checked(api.check_integer, what, low, high)


_positive_int = _int_between(1)
_seed = _int_between(0, what="seed")


def _add_user_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", dest="torch_model", metavar="MODULE:FACTORY",
                   help="your PyTorch model: a callable returning (module, example_input); MODULE "
                        "is a module name or a .py path (importing it runs its code)")
    p.add_argument("--data", dest="torch_data", metavar="MODULE:FACTORY",
                   help="your data: a callable returning (train_loader, test_loader), or "
                        "{'evaluate': f(model) -> float, 'finetune': f(model, epochs)}")


def _add_batch_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=_checked(api.check_batch), default=1, metavar="N",
                   help="inputs processed together, 1 to 65536; weights are reused across "
                        "them (default 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Hardware-aware cost modeling of neural-network pruning: what a "
                    "(pruned) network costs on a device, and how to prune it.",
    )
    from . import __version__
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("devices", help="list the device profiles")
    _add_profiles_option(p)
    _add_table_options(p)
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser("device", help="every value of one device profile with its source")
    p.add_argument("device", metavar="DEVICE", help="device id or path to a .toml profile")
    _add_profiles_option(p)
    _add_table_options(p)
    p.set_defaults(func=_cmd_device)

    p = sub.add_parser("networks", help="list the built-in networks")
    _add_table_options(p)
    p.set_defaults(func=_cmd_networks)

    p = sub.add_parser("show", help="one row per layer of a network: shapes, MACs, params")
    p.add_argument("network", metavar="NETWORK", help=NETWORK_HELP)
    _add_table_options(p)
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("energy", help="energy per layer by memory level and operand")
    _add_network_device(p)
    _add_batch_option(p)
    p.add_argument("--densities", metavar="FILE",
                   help="CSV with header layer,weight_density,act_density (default: dense)")
    p.add_argument("--dataflow", choices=api.DATAFLOWS, help="dataflow preset (default: the device's)")
    p.add_argument("--weight-format", metavar="FORMAT",
                   help="storage of pruned weights: " + ", ".join(api.WEIGHT_FORMATS[:4])
                   + ", N:M (2:4, alias nm), block-RxC (block-4x4, alias block); default: the "
                   "device's")
    p.add_argument("--detail", action="store_true",
                   help="one row per layer, memory level and operand instead")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw stacked bars per layer, by memory level and by operand")
    _add_profiles_option(p)
    _add_table_options(p)
    p.set_defaults(func=_cmd_energy)

    p = sub.add_parser("cachesim", help="cache hits, misses and write-backs of a layer's kernel "
                       "or of a trace, per level and data structure")
    _add_network_device(p, "device id or .toml profile with cache levels", optional_network=True)
    p.add_argument("--layer", metavar="NAME", help="conv or fc layer of NETWORK")
    p.add_argument("--scheme", type=_scheme, metavar="SCHEME",
                   help="how the weights are pruned and run: " + ", ".join(api.scheme_names()))
    p.add_argument("--density", type=_density, metavar="D", help="fraction of weights kept")
    p.add_argument("--trace", metavar="FILE.npy", help="simulate a trace file instead: (n,) "
                   "int64 addresses (4-byte reads) or (n, 3) int64 (address, size, is_write)")
    p.add_argument("--seed", type=_seed, default=None,
                   help="seed of the random weights and mask (default 0)")
    p.add_argument("--pycachesim-lru", action="store_true",
                   help="store hits do not refresh LRU order (pycachesim's behaviour)")
    _add_profiles_option(p)
    _add_table_options(p)
    p.set_defaults(func=_cmd_cachesim)

    p = sub.add_parser("latency", help="predicted latency per layer on a device, with the "
                       "terms it came from")
    _add_network_device(p)
    p.add_argument("--scheme", type=_scheme, default="dense", metavar="SCHEME",
                   help="how the weights are pruned and stored (default dense)")
    p.add_argument("--density", type=_density, default=1.0, metavar="D",
                   help="fraction of weights (groups, rows for compact) kept (default 1)")
    _add_batch_option(p)
    _add_profiles_option(p)
    _add_table_options(p)
    p.set_defaults(func=_cmd_latency)

    p = sub.add_parser("breakeven", help="per layer and pruning scheme, the density below which the "
                       "scheme is faster than dense")
    _add_network_device(p)
    p.add_argument("--schemes", "--formats", dest="formats", default=None,
                   metavar="LIST",
                   help="comma-separated pruning schemes to compare with dense, from: "
                        + ", ".join(api.scheme_names(pruning_only=True))
                        + ", N:M, block-RxC, node-roundK (default fine,simd,node and the N:M "
                        "patterns the device runs natively; --formats is the older spelling)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw latency against density, one line per format, per layer")
    _add_batch_option(p)
    _add_profiles_option(p)
    _add_table_options(p)
    p.set_defaults(func=_cmd_breakeven)

    p = sub.add_parser("calibrate", help="measure this machine and write its cpu profile "
                       "(TOML, marked 'calibrated on host')")
    p.add_argument("--out", metavar="FILE", help="write the profile to FILE (atomically; - is "
                   "standard output) instead of standard output")
    p.add_argument("--quick", action="store_true", help="fit the matrix-vector costs on "
                   "in-cache shapes only (about 15 s instead of about 80 s; less accurate on "
                   "layers larger than the caches)")
    p.set_defaults(func=_cmd_calibrate)

    MODELS = api.reference_models()

    def add_pruning_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", metavar="MODEL", nargs="?",
                       help="a reference model: " + ", ".join(MODELS) + "; or your PyTorch model "
                            "with --model and --data")
        _add_user_model_options(p)
        p.add_argument("--criterion", default="magnitude", choices=list(api.criteria()),
                       help="importance criterion (default: magnitude)")
        p.add_argument("--granularity", default="fine", type=_checked(api.check_scheme, True),
                       metavar="GRANULARITY",
                       help="what is removed together (default: fine)")
        p.add_argument("--group", type=_positive_int, default=None,
                       help="SIMD group width g, for --granularity simd only")
        p.add_argument("--seed", type=_seed, default=0, help="seed of data split, "
                       "initialization and pruning (default: 0)")

    p = sub.add_parser("prune", help="train a reference model and prune it; prints accuracy "
                                     "before and after and each layer's density")
    add_pruning_options(p)
    p.add_argument("--density", type=_density, required=True,
                   help="kept fraction of each layer's weights, in (0, 1]")
    p.add_argument("--schedule", default="oneshot", choices=list(api.schedules()),
                   help="oneshot, iterative (Han et al.) or agp (cubic, Zhu & Gupta) "
                        "(default: oneshot)")
    p.add_argument("--epochs", type=_int_between(0), default=10,
                   help="fine-tuning epochs (default: 10)")
    p.add_argument("--format", choices=FORMATS, default="table", help="table format")
    p.add_argument("--out", dest="out_dir", metavar="DIR",
                   help="write weights.npz (weights, biases, masks; a torch model: model.pt, "
                        "its state_dict, and model.onnx; after node or filter pruning also "
                        "model-compact.pt and .onnx, physically smaller) and summary.json to DIR "
                        "(all or none)")
    p.add_argument("--round-to", type=_positive_int, default=None, metavar="K",
                   help="round the compacted model's channel counts up to a multiple of K (e.g. "
                        "the device's SIMD width); node or filter pruning of a torch model, "
                        "with --out")
    _add_force_option(p)
    p.set_defaults(func=_cmd_prune)

    p = sub.add_parser("sensitivity", help="test accuracy against density, one layer pruned "
                                           "at a time without retraining")
    add_pruning_options(p)
    p.add_argument("--densities", type=_densities, default=None,
                   help="comma-separated densities (default: 0.9,0.7,0.5,0.3,0.2,0.1,0.05)")
    p.add_argument("--workers", type=_workers, default=0, metavar="N",
                   help="measure the layers on a local Dask cluster of N processes (default 0: "
                        "in this process; your --model too, importable on the workers)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="measure the layers on a running Dask cluster (tcp://HOST:PORT)")
    p.add_argument("--beside", metavar="N:M,...", default=None,
                   help="N:M patterns (2:4, 1:4, 4:8, ...) measured per layer beside the "
                        "granularity, one point each at density N/M")
    p.add_argument("--plot", metavar="FILE.png", help="also draw accuracy against density")
    _add_table_options(p)
    p.set_defaults(func=_cmd_sensitivity)

    p = sub.add_parser("granularity", help="Scalpel's choice per layer (dense, simd, node, fine) "
                                           "on a device, from the simulators")
    p.add_argument("model", metavar="NETWORK", nargs="?",
                   help="a reference model (" + ", ".join(MODELS) + "), measured; or, with "
                        "--density, any network or .onnx file; or your PyTorch model with "
                        "--model (and --data, without --density)")
    _add_user_model_options(p)
    p.add_argument("--density", type=_checked(api.recommend_densities_arg), default=None,
                   metavar="D|SCHEME=D,...",
                   help="choose from the simulators alone (needed for networks without trained "
                        "weights): D is the density fine-grained pruning reaches, and simd and "
                        "node get the density of equal accuracy from hwprune's density model "
                        "(docs/pruning.md); or give each named scheme its own density, e.g. "
                        "fine=0.1,simd=0.15,node=0.5")
    p.add_argument("--device", required=True, metavar="DEVICE[,DEVICE...]",
                   help="a device id or profile path, or several comma-separated (one study: "
                        "the devices share the searches)")
    p.add_argument("--tolerance", type=_tolerance, default=0.01,
                   help="accuracy drop allowed, as a fraction (default: 0.01)")
    p.add_argument("--seed", type=_seed, default=0, help="seed (default: 0)")
    p.add_argument("--workers", type=_workers, default=0, metavar="N",
                   help="run the searches and choices on a local Dask cluster of N processes "
                        "(default 0: in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run them on a running Dask cluster (tcp://HOST:PORT; docs/scaling.md)")
    _add_profiles_option(p)
    _add_table_options(p)
    p.set_defaults(func=_cmd_granularity)

    all_devices = "cortex-m4,core-i7,titan-x,eyeriss"
    p = sub.add_parser("tradeoff", help="accuracy against simulated energy and latency: every "
                                        "pruning policy swept over density and device")
    p.add_argument("model", metavar="MODEL", nargs="?",
                   help="a reference model: " + ", ".join(MODELS) + "; or your PyTorch model "
                        "with --model and --data")
    _add_user_model_options(p)
    _add_sweep_options(p, all_devices, "tradeoff")
    p.add_argument("--format", choices=FORMATS, default="table", help="table format")
    p.set_defaults(func=_cmd_tradeoff)

    p = sub.add_parser("report", help="train the reference models (or take your PyTorch model, "
                                      "--model and --data), run the policies on the devices, and "
                                      "write one HTML page with figures and CSVs")
    _add_user_model_options(p)
    _add_sweep_options(p, all_devices, "report")
    p.set_defaults(func=_cmd_report)

    bench_parser = sub.add_parser("bench", help="measure kernels on this machine")
    bench_sub = bench_parser.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser)
    bench_sub.required = True
    p = bench_sub.add_parser("kernels", help="every storage format's kernel beside scipy and "
                             "numpy, across densities, with break-even densities")
    p.add_argument("--quick", action="store_true",
                   help="3 shapes, 4 densities, 3 repeats (about a minute)")
    p.add_argument("--storage", metavar="LIST",
                   help="comma-separated subset of: dense, csr, group-csr, vector, kernel, "
                        "compact, scipy-csr, numpy-1t, numpy-mt")
    p.add_argument("--shapes", metavar="LIST", help="comma-separated subset of: alexnet-fc6, "
                   "alexnet-fc7, lenet300-fc1, alexnet-conv3, lenet5-conv2")
    p.add_argument("--repeats", type=_positive_int, default=7, metavar="N",
                   help="minimum calls per median (default 7)")
    _add_table_options(p)
    p.set_defaults(func=_cmd_bench_kernels)
    return parser


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output location of the verb, checked before any work (a file: can it be
    created or written; a directory: can it be created, and is it empty or hwprune's)."""
    if getattr(args, "out", None) is not None:
        check_out_path(args.out)
    if getattr(args, "plot", None) is not None:
        from .report.plots import check_plot_path

        check_plot_path(args.plot)
    if getattr(args, "out_dir", None) is not None:
        check_out_dir(args.out_dir, getattr(args, "force", False), args.verb)


class _Signalled(BaseException):
    """SIGTERM or SIGHUP arrived; raised from the handler so that ``finally`` blocks run."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame) -> None:
    remove_in_progress()           # at once: the exception may be delivered late
    raise _Signalled(signum)


HANDLED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                        if hasattr(signal, name))


def _install_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in HANDLED_SIGNALS:
        try:
            previous[signum] = signal.signal(signum, _on_signal)
        except (ValueError, OSError):
            pass
    return previous


def _restore_handlers(previous: dict) -> None:
    for signum, handler in previous.items():
        try:
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        except (ValueError, OSError, TypeError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    previous = _install_handlers()
    try:
        args = build_parser().parse_args(argv)
        _check_outputs(args)          # before any long work
        args.func(args)
    except _Signalled as exc:
        remove_in_progress()
        name = signal.Signals(exc.signum).name
        print(f"{PROG}: terminated by {name}; temporary files removed", file=sys.stderr)
        return 128 + exc.signum
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except HwpruneError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `hwprune show vgg16 | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        remove_in_progress()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        _restore_handlers(previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
