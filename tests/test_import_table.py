"""benchmarks/import_table.py (issue 21's table) on the two small transformer blocks and
two routes: one row per (model, route), hwprune's MACs equal to torch's, and the
parameter difference fully explained by the documented conventions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("torch")
pytest.importorskip("torchvision")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "import_table.py"
COLUMNS = ["model", "route", "layers", "MACs", "torch MACs", "MACs diff", "params", "torch params",
           "params diff (documented conventions)", "export s", "import s", "error"]


def _script():
    spec = importlib.util.spec_from_file_location("import_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module            # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _rows(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split(" | ")]
    assert head == COLUMNS
    return [dict(zip(head, (c.strip() for c in line.strip("|").split(" | ")))) for line in lines[2:]]


def test_table_has_a_row_per_model_and_route_with_torchs_macs(tmp_path):
    out = tmp_path / "table.md"
    assert _script().main(["--models", "preln_block,transformer_encoder_layer", "--routes", "torch,legacy",
                           "--out", str(out)]) == 0
    text = out.read_text()
    assert "torch " in text and "shared 2-core machine" in text
    rows = _rows(text)
    assert [(r["model"], r["route"]) for r in rows] == [
        ("preln_block", "torch"), ("preln_block", "legacy"),
        ("transformer_encoder_layer", "torch"), ("transformer_encoder_layer", "legacy")]
    for r in rows:
        if r["error"]:          # torch's legacy exporter cannot export nn.TransformerEncoderLayer
            assert (r["model"], r["route"]) == ("transformer_encoder_layer", "legacy")
            assert r["error"].startswith("export: ")
            continue
        assert r["MACs"] == r["torch MACs"] and r["MACs diff"] == "exact"
        assert r["params"] == r["torch params"] and r["params diff (documented conventions)"] == "exact"
        assert int(r["layers"]) > 10
    assert not list(tmp_path.glob(".*.tmp"))          # written atomically: no temporary file left


def test_unknown_model_or_route_is_refused_naming_the_accepted_ones():
    script = _script()
    with pytest.raises(SystemExit, match="unknown model nosuch; accepted: resnet18"):
        script.main(["--models", "nosuch"])
    with pytest.raises(SystemExit, match="unknown route onnx; accepted: torch, dynamo"):
        script.main(["--routes", "onnx"])
