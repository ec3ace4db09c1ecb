"""hwprune: hardware-aware cost modeling and simulation of neural-network pruning.

The Python API mirrors the ``hwprune`` command::

    import hwprune
    net = hwprune.network("alexnet")
    dev = hwprune.device("eyeriss")
    hwprune.show(net)          # one row per layer (DataFrame)
    hwprune.devices()          # one row per device profile
    hwprune.energy(net, dev)   # energy per layer by memory level and operand
"""

from .api import (
    device,
    device_detail,
    devices,
    energy,
    energy_detail,
    network,
    networks,
    show,
)
from .errors import HwpruneError, InputError, ProfileError, ShapeError, UnknownNameError

__version__ = "0.1.0"

__all__ = [
    "device", "device_detail", "devices", "energy", "energy_detail", "network", "networks",
    "show",
    "HwpruneError", "InputError", "ProfileError", "ShapeError", "UnknownNameError",
    "__version__",
]
