"""Durable Object ids and namespace names, shared by the host and the isolates.

Why ids are derived, not stored: ``idFromName`` must give the same id for the same name in
every isolate and after every restart without asking anyone, so an id is a SHA-256 of the
namespace's id and the name (64 hex characters, the shape Cloudflare uses). Unique ids are
64 random hex characters. Everything here is pure Python so both sides import it.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

ID_LENGTH = 64
_HEX = frozenset("0123456789abcdef")


def namespace_name(script: str, class_name: str) -> str:
    """Cloudflare names a namespace ``<script>_<class>``; also the folder of its objects."""
    return f"{script}_{class_name}"


def namespace_id(script: str, class_name: str) -> str:
    """A stable 32-hex id for the namespace (what Cloudflare's REST API calls its id)."""
    return hashlib.sha256(f"edgelet-do-namespace:{script}:{class_name}".encode()).hexdigest()[:32]


def id_from_name(ns_id: str, name: str) -> str:
    """The id of the object called ``name``: deterministic across isolates and restarts."""
    if not isinstance(name, str):
        raise TypeError(f"idFromName() takes a str name, got {type(name).__name__}")
    return hashlib.sha256(f"{ns_id}:{name}".encode()).hexdigest()


def new_unique_id() -> str:
    return secrets.token_hex(ID_LENGTH // 2)


def is_valid_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == ID_LENGTH and _HEX.issuperset(value)


def check_id(value: Any, *, where: str = "idFromString()") -> str:
    """Return the normalised (lower-case) id or raise ValueError saying what a valid one is."""
    if isinstance(value, str) and len(value) == ID_LENGTH:
        lowered = value.lower()
        if _HEX.issuperset(lowered):
            return lowered
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise ValueError(
        f"{where}: {shown} is not a Durable Object id; an id is {ID_LENGTH} hexadecimal "
        f"characters, as returned by id.toString() (use idFromName(name) for a name)")


class DurableObjectId:
    """``env.NS.idFromName(...)``: compares and hashes by its hex string, prints as it."""

    __slots__ = ("_hex", "name")

    def __init__(self, hex_id: str, name: str | None = None) -> None:
        self._hex = hex_id
        #: the name it was derived from, or None for unique ids and idFromString
        self.name = name

    def toString(self) -> str:  # noqa: N802 - Cloudflare's name
        return self._hex

    to_string = toString

    def equals(self, other: Any) -> bool:
        return self == other

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        suffix = f" name={self.name!r}" if self.name is not None else ""
        return f"<DurableObjectId {self._hex}{suffix}>"

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, DurableObjectId):
            return self._hex == other._hex
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._hex)

    def __reduce__(self) -> tuple[Any, ...]:
        return (DurableObjectId, (self._hex, self.name))
