"""What the host offers binding plug-ins: the other half of ``edgelet.bindings.BindingPlugin``.

Plug-ins see the host only through this protocol, so the host can change inside without
touching a binding, and a binding never reaches into another binding.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.clock import Clock
    from edgelet.config import PlatformConfig


class HostServices(Protocol):
    config: PlatformConfig
    clock: Clock
    #: folder for persistent state, or None with ``--in-memory``
    state_dir: Path | None

    def database(self, name: str) -> sqlite3.Connection:
        """An open SQLite connection for ``name`` (WAL, durable across kill -9)."""

    def handlers(self, worker: str) -> frozenset[str] | None:
        """The handler names ``worker``'s running script defines (``fetch``, ``queue``,
        ``scheduled``, ...), or None while unknown (no isolate loaded it yet, or a Wasm
        Worker): for warnings about a binding whose Worker cannot answer it."""

    async def invoke(self, worker: str, event: str, payload: Any, *,
                     timeout: float | None = None, cancel: bool = False) -> Any:
        """Deliver an event to a Worker's isolate and return its answer.

        ``event`` is ``"<kind>.<name>"``; the isolate hands it to
        ``edgelet.bindings.<kind>.isolate.handle_event``. Raises ``IsolateError`` when the
        isolate crashes or times out (after ``timeout`` s, default the Worker's
        ``request_timeout_ms``), ``RemoteError`` when the handler raised. ``cancel``: on
        that timeout the isolate cancels the event's task (an event that holds something
        while it runs, as a Durable Object's event holds the object's input gate).
        """

    async def fetch(self, worker: str, method: str, url: str, headers: list[list[str]],
                    body: bytes) -> list[Any]:
        """Run a Worker's fetch handler: ``[status, headers, body]``; isolate failures are 5xx."""

    async def start_isolate(self, name: str, main: Path, *, like: str, env: dict[str, Any]) -> Any:
        """Start an isolate of its own for a script handed over at run time (Worker Loader),
        with Worker ``like``'s limits; its ``invoke(event, *args)`` runs ``fetch``/``rpc``."""

    async def stop_isolate(self, isolate: Any) -> None:
        """End an isolate from ``start_isolate``."""

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run background work that counts as "busy" for virtual-time settling."""
