"""What an isolate offers a binding's isolate half: the mirror of ``edgelet.host_api``.

A binding's ``isolate.py`` sees the Worker's process only through this protocol (the
``runtime`` argument of ``make_binding``, ``handle_event`` and ``setup``), so the isolate's
internals can change without touching a binding, as ``HostServices`` does on the host side.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.entrypoints import Env, ExecutionContext


class IsolateServices(Protocol):
    #: the Worker's name (``name`` in its config)
    worker: str
    #: the Worker's ``env``: vars, secrets and every binding's object
    env: Env
    #: the user's script module (None for a Wasm Worker)
    module: ModuleType | None
    #: the isolate's start spec: ``main``, ``state_dir`` (None in memory), ``virtual_clock``
    options: dict[str, Any]

    async def call(self, kind: str, binding: str, method: str, *args: Any) -> Any:
        """Call the host half of the binding ``binding`` this Worker declares (data only);
        raises the host's error type by name (ValueError, KeyError, ...)."""

    async def call_host(self, kind: str, method: str, *args: Any) -> Any:
        """Call the host half of ``kind`` itself, not through an ``env`` binding: for work
        the kind does on the Worker's behalf (a workflow's step records, a Durable Object's
        alarms). The plug-in's ``handle_isolate_call`` decides what the Worker may do."""

    def classes(self) -> dict[str, type]:
        """The classes the user's script defines or imports, by name."""

    def new_context(self) -> ExecutionContext:
        """A fresh ``ctx`` for a handler (``wait_until`` tasks are tracked)."""

    def handler(self, name: str) -> tuple[Any, ExecutionContext]:
        """The Worker's handler ``name`` (e.g. ``queue``), bound on its default entrypoint or
        its ``on_<name>`` function, with a fresh ctx; LookupError naming the fix if it has none."""

    def log(self, level: str, text: str) -> None:
        """A line in the Worker's log (``edgelet tail``); safe from any thread."""
