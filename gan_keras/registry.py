"""Name tables for the pluggable parts (losses, norms, strategies), as in big_vision.

A config names a part by string; the table that builds the part is also the
one the config validator checks membership in, so the two cannot disagree:

    LOSSES = Registry("train.loss")
    LOSSES.register("hinge", (d_hinge, g_hinge))
    LOSSES.check(config.train.loss)      # validation: ValueError naming the field
    d_loss, g_loss = LOSSES.get(name)    # use: the same check, then the entry
"""

from collections.abc import Iterator
from typing import Any


class Registry:
    """Entries looked up by name; `field` is the config field that names them."""

    def __init__(self, field: str):
        self.field = field
        self._entries: dict[str, Any] = {}

    def register(self, name: str, entry: Any) -> Any:
        if name in self._entries:
            raise ValueError(f"{self.field}: {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def check(self, name) -> str:
        """`name` if registered, else ValueError naming the field, the value and the choices."""
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"{self.field} must be one of {self.names()}, got {name!r}")
        return name

    def get(self, name) -> Any:
        return self._entries[self.check(name)]

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
