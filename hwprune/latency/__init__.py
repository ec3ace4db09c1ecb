"""Latency simulators per device class (mcu, cpu, gpu, accelerator), break-even
densities."""

from .estimate import LatencyEstimate
from .network import breakeven, latency_curves, layer_latency, network_latency
from .work import KernelShape, KernelWork, kernel_work

__all__ = ["KernelShape", "KernelWork", "LatencyEstimate", "breakeven",
           "kernel_work", "latency_curves", "layer_latency", "network_latency"]
