"""What runs: layers, networks, the built-in zoo."""

from .builder import NetworkBuilder
from .layer import Layer
from .network import INPUT, Network
from .ops import Add, BatchNorm, Concat, Conv2d, Flatten, GlobalPool, Linear, Pool2d, Shape
from .zoo import ZOO, load_builtin, zoo_names

__all__ = [
    "NetworkBuilder", "Layer", "INPUT", "Network", "Add", "BatchNorm", "Concat", "Conv2d",
    "Flatten", "GlobalPool", "Linear", "Pool2d", "Shape", "ZOO", "load_builtin", "zoo_names",
]
