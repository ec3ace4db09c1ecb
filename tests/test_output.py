"""Rendering tables and writing files atomically."""

import pandas as pd
import pytest

from hwprune.errors import InputError
from hwprune.report.output import render, write_atomic


def test_render_table_aligns_and_groups_digits():
    df = pd.DataFrame({"layer": ["a", "bbbb"], "macs": [1234567, 8], "ratio": [0.5, 2.0]})
    lines = render(df, "table").splitlines()
    assert lines[0] == "layer       macs  ratio"
    assert lines[1] == "a      1,234,567    0.5"
    assert lines[2] == "bbbb           8      2"


def test_render_rejects_unknown_format():
    with pytest.raises(InputError, match="accepted formats: table, csv, json"):
        render(pd.DataFrame({"a": [1]}), "xml")


def test_write_atomic_replaces_and_cleans_up(tmp_path):
    target = tmp_path / "t.txt"
    write_atomic(target, "one")
    write_atomic(target, "two")
    assert target.read_text() == "two"

    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # type: ignore[arg-type]  # fails while writing
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
