"""The value every latency model returns, and access to a profile's latency keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from ..errors import InputError
from ..hardware.profile import LATENCY_KEYS, DeviceProfile


@dataclass(frozen=True)
class LatencyEstimate:
    """Predicted time of one layer's kernel on one device.

    Attributes:
        cycles: device clock cycles.
        seconds: ``cycles / clock_hz``.
        bound: the term that set the time (``issue``, ``dram``, ``l2``, ``compute``,
            ``latency``, ``flash``, ...; the keys of ``parts``).
        parts: cycles of each term the model combined (see the model's docstring for
            how: a sum, a maximum, or both).
    """

    cycles: float
    seconds: float
    bound: str
    parts: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


def make_estimate(dev: DeviceProfile, cycles: float, bound: str,
                  parts: Mapping[str, float]) -> LatencyEstimate:
    return LatencyEstimate(cycles=float(cycles), seconds=float(cycles) / dev.clock_hz, bound=bound,
                           parts=MappingProxyType({k: float(v) for k, v in parts.items()}))


def latency_param(dev: DeviceProfile, key: str) -> float:
    """``dev.latency[key]``, or an error naming the profile and the missing key."""
    try:
        return dev.latency[key]
    except KeyError:
        accepted = ", ".join(LATENCY_KEYS[dev.device_class])
        raise InputError(
            f"device {dev.id!r} ({dev.origin or 'profile'}) has no latency.{key}; a "
            f"{dev.device_class} latency model needs a [latency] table with: {accepted}"
        ) from None
