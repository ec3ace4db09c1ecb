"""The gpu latency model's dense kernels against Baidu DeepBench's GTX Titan X measurements.

hwprune prices a dense layer on ``titan-x`` as a cuDNN implicit GEMM (convolutions) or a
cuBLAS SGEMM (fc at batch > 1) with tiles, split-K and waves on a roofline
(:mod:`hwprune.latency.gpu`). DeepBench (github baidu-research/DeepBench) timed those
library calls on a GTX Titan X (Maxwell, CUDA 7.5, cuDNN 5): ``results/train/
DeepBench_NV_TitanX.xlsx``, sheet "Results - FP32". The points are committed in
``benchmarks/data/deepbench_titanx.csv`` (source, commit and license in its header), so
this runs without network access.

Compared (launch excluded: DeepBench averages back-to-back calls):

* every SGEMM with neither operand transposed (``NN``; the model has no transposes),
  priced with ``dense_kernel_terms(..., convolution=False)``; the ``large`` subset (every
  side >= 512, >= 2e10 MACs) is where ``gemm_efficiency`` was taken from, the rest is out
  of sample;
* every forward convolution cuDNN ran as an implicit GEMM (``IMPLICIT_PRECOMP_GEMM`` or
  ``IMPLICIT_GEMM``; ``M`` = filters, ``N`` = P Q batch, ``K`` = C R S, input read once),
  priced with ``convolution=True``;
  convolutions cuDNN ran with Winograd or FFT are listed as excluded (the model prices
  the implicit GEMM only).

Per point it prints measured and predicted milliseconds and their ratio; per set the
ratio's median, p5, p95 and the share within +-25%; it writes every point to
``benchmarks/results/gpu_deepbench.csv``.

Run:  python benchmarks/validate_gpu.py [--data CSV] [--out CSV] [--quiet]
      python benchmarks/validate_gpu.py --extract DeepBench_NV_TitanX.xlsx  (rewrites the data
      file from the spreadsheet; stdlib only)
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import hwprune
from hwprune.latency.gpu import dense_kernel_terms

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "deepbench_titanx.csv"
OUT = HERE / "results" / "gpu_deepbench.csv"

HEADER = """\
# Baidu DeepBench, GTX Titan X (Maxwell) training results, sheet "Results - FP32":
# github.com/baidu-research/DeepBench, file results/train/DeepBench_NV_TitanX.xlsx,
# commit da81ba7820739e2e506dc27f382d15be5479f98f (file last changed in f48528cf).
# License: Apache License 2.0 (DeepBench's LICENSE). Extracted by
# `python benchmarks/validate_gpu.py --extract DeepBench_NV_TitanX.xlsx`: every dense
# GEMM row and every convolution row, times unchanged. gemm: m n k, a/b transposed,
# time_ms = the GEMM time. conv: DeepBench's W H C N K S R pad stride P Q as
# w h c batch filters s r pad_w pad_h stride_w stride_h p q, time_ms = forward time,
# algorithm = cuDNN's forward algorithm. sheet_row = the spreadsheet's row.
"""
FIELDS = ["kind", "m", "n", "k", "a_transpose", "b_transpose", "w", "h", "c", "batch", "filters",
          "s", "r", "pad_w", "pad_h", "stride_w", "stride_h", "p", "q", "algorithm", "time_ms",
          "sheet_row"]


def _sheet_rows(xlsx: Path, sheet: str) -> list[tuple[int, list[str]]]:
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    tag = "{%s}" % ns["m"]
    with zipfile.ZipFile(xlsx) as z:
        strings = ["".join(t.text or "" for t in si.iter(tag + "t"))
                   for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", ns)]
        names = [s.get("name") for s in ET.fromstring(z.read("xl/workbook.xml")).find("m:sheets", ns)]
        if sheet not in names:
            raise SystemExit(f"{xlsx}: no sheet {sheet!r} (sheets: {names})")
        root = ET.fromstring(z.read(f"xl/worksheets/sheet{names.index(sheet) + 1}.xml"))
    rows = []
    for row in root.iter(tag + "row"):
        vals = []
        for c in row.findall("m:c", ns):
            v = c.find("m:v", ns)
            text = "" if v is None else v.text
            vals.append(strings[int(text)] if c.get("t") == "s" and text else (text or ""))
        rows.append((int(row.get("r")), vals))
    return rows


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def extract(xlsx: Path, out: Path) -> int:
    """Write the GEMM and convolution rows of DeepBench's Titan X sheet to ``out``."""
    records, section = [], "gemm"
    for rownum, vals in _sheet_rows(xlsx, "Results - FP32"):
        cells = [v.strip() for v in vals]
        while cells and not cells[0]:            # some rows start one column to the right
            cells.pop(0)
        if not cells:
            continue
        if cells[0].startswith("Convolution"):
            section = "conv"
            continue
        if cells[0].startswith("Recurrent"):
            break
        if section == "gemm":
            if len(cells) < 6 or not all(x.isdigit() for x in cells[:3]) or \
                    cells[3] not in "NT" or cells[4] not in "NT":
                continue
            ms = next(x for x in (_num(c) for c in cells[5:] if c) if x is not None)
            records.append({"kind": "gemm", "m": cells[0], "n": cells[1], "k": cells[2],
                            "a_transpose": cells[3], "b_transpose": cells[4], "time_ms": repr(ms),
                            "sheet_row": rownum})
        else:
            if len(cells) < 21 or not all(x.isdigit() for x in cells[:11]):
                continue
            keys = ["w", "h", "c", "batch", "filters", "s", "r", "pad_w", "pad_h", "stride_w",
                    "stride_h"]
            rec = {"kind": "conv", **dict(zip(keys, cells[:11])), "p": cells[14], "q": cells[15],
                   "algorithm": cells[20], "time_ms": repr(float(cells[11])), "sheet_row": rownum}
            records.append(rec)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        f.write(HEADER)
        w = csv.DictWriter(f, FIELDS, restval="")
        w.writeheader()
        w.writerows(records)
    return len(records)


def load(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def predict(dev, rec: dict[str, str]) -> tuple[float, str]:
    """Predicted milliseconds (launch excluded) and the bound term of one DeepBench row."""
    i = {k: int(v) for k, v in rec.items() if v.isdigit()}
    if rec["kind"] == "gemm":
        terms = dense_kernel_terms(dev, i["m"], i["n"], i["k"], convolution=False)
    else:
        terms = dense_kernel_terms(dev, i["filters"], i["p"] * i["q"] * i["batch"],
                                   i["c"] * i["r"] * i["s"], convolution=True,
                                   in_elems=i["c"] * i["w"] * i["h"] * i["batch"])
    bound = max(terms, key=terms.get)
    return terms[bound] / dev.clock_hz * 1e3, bound


def _set_of(rec: dict[str, str]) -> str | None:
    if rec["kind"] == "gemm":
        if rec["a_transpose"] != "N" or rec["b_transpose"] != "N":
            return None
        m, n, k = int(rec["m"]), int(rec["n"]), int(rec["k"])
        return "sgemm-large" if min(m, n, k) >= 512 and m * n * k >= 2e10 else "sgemm-other"
    return "conv-implicit-gemm" if rec["algorithm"] in ("IMPLICIT_PRECOMP_GEMM", "IMPLICIT_GEMM") else None


def summary(ratios: list[float]) -> str:
    if len(ratios) < 2:
        return f"n={len(ratios)}"
    q = statistics.quantiles(ratios, n=20, method="inclusive")
    within = sum(0.75 <= r <= 1.25 for r in ratios)
    return (f"n={len(ratios):3d}  median {statistics.median(ratios):.2f}  p5 {q[0]:.2f}  "
            f"p95 {q[-1]:.2f}  within +-25%: {within}/{len(ratios)} ({within / len(ratios):.0%})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--device", default="titan-x")
    ap.add_argument("--quiet", action="store_true", help="only the summary")
    ap.add_argument("--extract", type=Path, metavar="XLSX",
                    help="rewrite --data from DeepBench_NV_TitanX.xlsx and stop")
    args = ap.parse_args(argv)
    if args.extract:
        print(f"{extract(args.extract, args.data)} rows -> {args.data}")
        return 0
    dev = hwprune.device(args.device)
    rows, excluded = [], {}
    for rec in load(args.data):
        which = _set_of(rec)
        if which is None:
            why = ("transposed operand" if rec["kind"] == "gemm"
                   else f"cuDNN ran {rec['algorithm']}")
            excluded[why] = excluded.get(why, 0) + 1
            continue
        pred, bound = predict(dev, rec)
        meas = float(rec["time_ms"])
        rows.append({**rec, "set": which, "measured_ms": meas, "predicted_ms": round(pred, 6),
                     "ratio": round(pred / meas, 4), "bound": bound})
    if not args.quiet:
        print(f"# {dev.name}: predicted / measured (DeepBench), launch excluded")
        for r in rows:
            if r["kind"] == "gemm":
                what = f"sgemm {r['m']:>5}x{r['n']:>5}x{r['k']:>6}"
            else:
                what = (f"conv  {r['w']}x{r['h']}x{r['c']} b{r['batch']} -> {r['filters']} "
                        f"{r['r']}x{r['s']}/{r['stride_w']}")
            print(f"{r['set']:<19} {what:<36} meas {r['measured_ms']:9.3f} ms  "
                  f"pred {r['predicted_ms']:9.3f} ms  ratio {r['ratio']:5.2f}  {r['bound']}")
    print("# predicted / measured by set")
    for name in ("sgemm-large", "sgemm-other", "conv-implicit-gemm"):
        print(f"{name:<19} {summary([r['ratio'] for r in rows if r['set'] == name])}")
    print(f"{'all':<19} {summary([r['ratio'] for r in rows])}")
    print("excluded: " + ", ".join(f"{n} ({why})" for why, n in sorted(excluded.items())))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS[:-1] + ["set", "measured_ms", "predicted_ms", "ratio", "bound",
                                             "sheet_row"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
