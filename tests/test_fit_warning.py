"""Layers that do not fit a device's memories: one warning line per network on the
command line, and a ``fits_memory`` column in the energy and latency tables."""

import pytest

import hwprune
from hwprune import api
from hwprune.cli import main


@pytest.mark.parametrize("verb", ["energy", "latency"])
def test_one_warning_line_names_the_count(verb, capsys):
    assert main([verb, "resnet18", "--device", "cortex-m4", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("hwprune: warning:")]
    assert len(warnings) == 1 and "26 of 52 layers of resnet18 do not fit cortex-m4" in warnings[0]
    header = out.splitlines()[0].split(",")
    assert "fits_memory" in header
    assert main([verb, "lenet-5", "--device", "titan-x", "--format", "csv"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_latency_and_energy_agree_on_what_fits():
    dev = hwprune.device("cortex-m4")
    energy = api.energy("mobilenet-v1", dev).set_index("layer")["fits_memory"]
    latency = api.latency("mobilenet-v1", dev).set_index("layer")["fits_memory"]
    assert (energy == latency).all() and 0 < (~latency).sum() < len(latency)
