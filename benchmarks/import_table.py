"""Issue 21's import table: every model of the issue by every import route, with
hwprune's counts against torch's own and the time each step takes.

Routes:
- ``torch``: ``from_torch`` (torch.fx), batch norms folded (the default);
- ``dynamo``: torch's default ONNX exporter (``dynamo=True``), then ``load_onnx``;
- ``legacy``: the TorchScript exporter (``dynamo=False``) with constant folding;
- ``legacy-nofold``: the same exporter with ``do_constant_folding=False``.

For each (model, route): layers, hwprune's MACs and torch's
(``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2, on fake tensors with the math
attention backend), hwprune's parameters and torch's ``sum(p.numel())``, the
difference split into the documented conventions (below), the export time and
hwprune's own import time (``time.perf_counter``; ``load_onnx`` includes hwprune's
simplification pass), or the error where a route fails.

Conventions (docs/importing.md, "Counts against torch"):
- a batch norm folded into the conv/linear layer before it carries no parameters of
  its own: -2C per folded batch norm (every route);
- the legacy exporter's constant folding folds batch norms itself and gives a
  bias-free convolution a bias: +C per such batch norm;
- the dynamo exporter drops a Conv's or Gemm's bias that is all zeros (untrained
  models: zero-initialised biases, unit batch norms), and a fold's bias where one
  is non-zero is kept.

The export helpers and the expected-parameter rules are the ONNX zoo test's
(``tests/test_import_onnx_zoo.py``) and torch's count is the torch zoo test's
(``tests/test_import_torch_zoo.py``), imported rather than copied, so the table and
the tests count the same way.

    nice -n 10 python benchmarks/import_table.py --out benchmarks/results/import_table.md
    python benchmarks/import_table.py --models preln_block,resnet18 --routes torch,dynamo

Input: 1x3x224x224 for torchvision's models (googlenet with ``aux_logits=False``,
whose auxiliary heads run only in training), 1x16x64 tokens for the two transformer
blocks (64 features, 4 heads). Untrained models, seeded; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
import conftest  # noqa: E402,F401  (makes torchvision's model definitions importable)
import torch  # noqa: E402
import torchvision  # noqa: E402
from test_import_onnx_zoo import _expected_params, _export  # noqa: E402
from test_import_torch_zoo import KWARGS, ZOO, torch_counts  # noqa: E402
from transformer_blocks import PreLNBlock  # noqa: E402

from hwprune.workload.onnx_import import load_onnx  # noqa: E402
from hwprune.workload.torch_import import from_torch  # noqa: E402

BLOCKS = ("preln_block", "transformer_encoder_layer")
MODELS = (*ZOO, *BLOCKS)
ROUTES = ("torch", "dynamo", "legacy", "legacy-nofold")
EXPORT_ROUTE = {"dynamo": "dynamo", "legacy": "legacy-folded", "legacy-nofold": "legacy-unfolded"}
"""This script's route names -> the ONNX zoo test's (``_export``, ``_expected_params``)."""


@dataclass(frozen=True)
class Row:
    """One (model, route): hwprune's counts and torch's, seconds, or the error."""

    model: str
    route: str
    layers: int | None = None
    macs: int | None = None
    torch_macs: int | None = None
    params: int | None = None
    torch_params: int | None = None
    conventions: tuple[tuple[str, int], ...] = ()   # (reason, parameters it adds), documented
    export_s: float | None = None
    import_s: float | None = None
    error: str | None = None

    @property
    def unexplained_params(self) -> int | None:
        """hwprune's params minus torch's minus every documented convention (0 = all explained)."""
        if self.params is None:
            return None
        return self.params - self.torch_params - sum(n for _, n in self.conventions)


def build(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The seeded, untrained model in eval mode and its example input (batch 1)."""
    torch.manual_seed(0)
    if name == "preln_block":
        return PreLNBlock(64, 4).eval(), torch.randn(1, 16, 64)
    if name == "transformer_encoder_layer":
        return torch.nn.TransformerEncoderLayer(64, 4, 128, batch_first=True).eval(), torch.randn(1, 16, 64)
    model = getattr(torchvision.models, name)(**KWARGS.get(name, {})).eval()
    return model, torch.randn(1, 3, 224, 224)


def conventions(model, x, route: str) -> tuple[tuple[str, int], ...]:
    """The documented parameter differences of ``route`` from ``sum(p.numel())``, each
    with its size; zero-sized ones left out."""
    total = sum(p.numel() for p in model.parameters())
    folded = _expected_params(model, x, "legacy-unfolded")       # only the -2C per folded batch norm
    parts = [("folded batch norms, -2C each", folded - total)]
    if route == "legacy":
        parts.append(("exporter's fold adds a bias to bias-free convs, +C each",
                      _expected_params(model, x, "legacy-folded") - folded))
    if route == "dynamo":
        parts.append(("dynamo drops all-zero biases (a non-zero folded bias is kept)",
                      _expected_params(model, x, "dynamo") - folded))
    return tuple((reason, n) for reason, n in parts if n)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _error(exc: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]


def measure(name: str, route: str, model, x, torch_macs: int, folder: Path) -> Row:
    """Export (ONNX routes) and import one model by one route; an exception from either
    step is recorded in the row, naming the step."""
    base = dict(model=name, route=route, torch_macs=torch_macs,
                torch_params=sum(p.numel() for p in model.parameters()))
    export_s = None
    if route == "torch":
        source = model
    else:
        source = folder / f"{name}-{route}.onnx"
        start = time.perf_counter()
        try:
            _quiet(_export, model, x, EXPORT_ROUTE[route], source)
        except Exception as exc:           # torch's exporter: recorded, not ours to fix
            return Row(**base, export_s=time.perf_counter() - start, error="export: " + _error(exc))
        export_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        net = _quiet(from_torch, model, x) if route == "torch" else _quiet(load_onnx, source)
        net = net.network
    except Exception as exc:
        return Row(**base, export_s=export_s, import_s=time.perf_counter() - start,
                   error="import: " + _error(exc))
    import_s = time.perf_counter() - start
    return Row(**base, layers=len(net.layers), macs=int(net.macs), params=int(net.params),
               conventions=conventions(model, x, route), export_s=export_s, import_s=import_s)


def run(models, routes, folder: Path, log=print) -> list[Row]:
    """Every (model, route), one model built and counted by torch once."""
    rows = []
    for name in models:
        model, x = build(name)
        torch_macs, _ = torch_counts(model, x)
        for route in routes:
            row = measure(name, route, model, x, torch_macs, folder)
            log(f"{name:28s} {route:14s} " + (row.error or f"{row.layers} layers, MACs {row.macs:,} "
                f"(torch {row.torch_macs:,}), params {row.params:,} (torch {row.torch_params:,}), "
                f"import {row.import_s:.2f} s"))
            rows.append(row)
            if route != "torch":
                (folder / f"{name}-{route}.onnx").unlink(missing_ok=True)
    return rows


def _n(v) -> str:
    return "" if v is None else f"{v:,}"


def _s(v) -> str:
    return "" if v is None else f"{v:.2f}"


def _macs_cell(row: Row) -> str:
    if row.macs == row.torch_macs:
        return "exact"
    return f"{row.macs - row.torch_macs:+,} ({(row.macs - row.torch_macs) / row.torch_macs:+.3%})"


def _params_cell(row: Row) -> str:
    parts = [f"{n:+,} {reason}" for reason, n in row.conventions]
    left = row.unexplained_params
    if left:
        parts.append(f"**{left:+,} unexplained**")
    return "; ".join(parts) if parts else "exact"


def markdown(rows: list[Row], header: str) -> str:
    """The table, one row per (model, route)."""
    lines = [header, "",
             "| model | route | layers | MACs | torch MACs | MACs diff | params | torch params "
             "| params diff (documented conventions) | export s | import s | error |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for r in rows:
        ok = r.error is None
        lines.append(" | ".join([
            f"| {r.model}", r.route, _n(r.layers), _n(r.macs), _n(r.torch_macs), _macs_cell(r) if ok else "",
            _n(r.params), _n(r.torch_params), _params_cell(r) if ok else "", _s(r.export_s),
            _s(r.import_s), (r.error or "").replace("|", "\\|")]) + " |")
    return "\n".join(lines) + "\n"


def header(argv: list[str], elapsed_s: float) -> str:
    import onnx
    import onnxscript
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"# Import table (issue 21)\n\n"
            f"- Command: `python benchmarks/import_table.py {' '.join(argv)}`\n"
            f"- Date: {now}; whole run {elapsed_s / 60:.1f} min\n"
            f"- Versions: torch {torch.__version__}, torchvision {torchvision.__version__}, "
            f"onnx {onnx.__version__}, onnxscript {onnxscript.__version__}, Python {sys.version.split()[0]}\n"
            f"- Times are wall-clock seconds on a shared 2-core machine (other jobs running): "
            f"compare them in order of magnitude only. `import s` is hwprune's own import "
            f"(`from_torch`, or `load_onnx` with its simplification pass); `export s` is torch's exporter.\n"
            f"- Inputs: 1x3x224x224 (torchvision, untrained, seeded; googlenet `aux_logits=False`), "
            f"1x16x64 tokens (the two transformer blocks). torch MACs: `FlopCounterMode` FLOPs / 2 on "
            f"fake tensors, math attention backend. Params diff: hwprune's params minus "
            f"`sum(p.numel())`, split into the conventions of docs/importing.md; anything left is "
            f"marked unexplained.")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _names(text: str, known: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"import_table: unknown {what} {', '.join(unknown) or '(none given)'}; "
                         f"accepted: {', '.join(known)}")
    return names


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated; default: all")
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated: " + ",".join(ROUTES))
    parser.add_argument("--out", type=Path, help="write the markdown table here (else print it)")
    args = parser.parse_args(argv)
    models, routes = _names(args.models, MODELS, "model"), _names(args.routes, ROUTES, "route")
    if args.out is not None and not args.out.parent.is_dir():
        raise SystemExit(f"import_table: --out {args.out}: its folder does not exist")
    start = time.perf_counter()
    mha_fast_path = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)     # the exporters and the counter see the same ops
    try:
        with tempfile.TemporaryDirectory(prefix="import-table-") as folder:
            rows = run(models, routes, Path(folder), log=lambda s: print(s, flush=True))
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        torch.backends.mha.set_fastpath_enabled(mha_fast_path)
    text = markdown(rows, header(argv, time.perf_counter() - start))
    if args.out is None:
        print(text)
    else:
        write_atomic(args.out, text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
