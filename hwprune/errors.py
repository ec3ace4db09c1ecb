"""Exception types raised by hwprune.

Every error a user can cause by what they pass in (a name, a file, a number) is an
:class:`InputError`; the ``hwprune`` command prints it as one line and exits with
status 2. Anything else that goes wrong is a :class:`HwpruneError` (exit status 1).
Messages always say what was wrong and what is accepted.
"""

from __future__ import annotations


class HwpruneError(Exception):
    """Base class of every error hwprune raises on purpose."""


class InputError(HwpruneError, ValueError):
    """The caller passed something hwprune cannot use (bad name, value or file)."""


class UnknownNameError(InputError, KeyError):
    """A name (network, device, layer, verb option) is not one hwprune knows.

    ``KeyError`` quotes its message when printed; this class prints it plainly.
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ProfileError(InputError):
    """A device-profile TOML file is malformed.

    Attributes:
        path: the file (or ``"<built-in>"``/``"<dict>"``) the profile came from.
        key: dotted key inside the file that is wrong (``memory[2].size_bytes``).
        reason: what is wrong and what is accepted.
    """

    def __init__(self, path: str, key: str, reason: str):
        self.path = path
        self.key = key
        self.reason = reason
        where = f"{path}: {key}" if key else path
        super().__init__(f"device profile {where}: {reason}")


class ShapeError(InputError):
    """A layer does not fit the shape of its input (kernel larger than the map, ...)."""
