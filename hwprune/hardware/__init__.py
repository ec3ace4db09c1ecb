"""Device profiles: compute units and memory hierarchies read from TOML files."""

from .loader import load_profile, parse_profile
from .profile import DEVICE_CLASSES, MEMORY_KINDS, ComputeUnits, DeviceProfile, MemoryLevel
from .registry import ENV_VAR, builtin_profile_dir, get_device, list_devices

__all__ = [
    "DEVICE_CLASSES", "MEMORY_KINDS", "ComputeUnits", "DeviceProfile", "MemoryLevel",
    "ENV_VAR", "builtin_profile_dir", "get_device", "list_devices", "load_profile",
    "parse_profile",
]
