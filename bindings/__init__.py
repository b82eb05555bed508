"""Binding plug-ins: the one interface between the host and every kind of binding.

Each binding kind is one package under ``bindings/`` and owns everything about itself:

``config.py``
    Dataclasses for its wrangler tables: ``KEYS`` (the top-level keys it reads),
    ``parse(key, section) -> list`` and optionally ``validate(platform_config)`` for
    cross-Worker checks. Data only, so config can be checked without starting anything.
``plugin.py``
    ``Plugin``, a :class:`BindingPlugin`: the host-side service, its storage, its
    control-API routes and CLI commands.
``isolate.py``
    Imported only inside a Worker's isolate, written against
    :class:`edgelet.runtime.isolate_api.IsolateServices` (the isolate's mirror of
    ``HostServices``): ``make_binding(name, options, runtime)`` builds the object a Worker
    sees in ``env``; optional ``handle_event(runtime, event, payload)`` answers events the
    host sends (a queue batch, a Durable Object call, ...); optional ``setup(runtime,
    options)`` receives ``Plugin.isolate_options``; optional ``SDK_EXPORTS``,
    ``ENTRYPOINT_BASES`` and ``HANDLERS`` name what the kind adds to the ``workers``
    module, the base classes the platform runs, and the handler names it calls.

The host discovers plug-ins by scanning this package, so adding a binding means adding a
package here and nothing else. Folders named in ``EDGELET_BINDINGS_PATH`` (``os.pathsep``
separated) are scanned too: binding packages kept outside this one, such as the example
binding of docs/HACKING.md that the test suite loads. Isolates inherit the environment, so
the host and every isolate see the same kinds.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from edgelet.channel import NOT_NOW

if TYPE_CHECKING:  # pragma: no cover - typing only
    import click
    from starlette.routing import BaseRoute

    from edgelet.config import PlatformConfig, WorkerConfig
    from edgelet.host_api import HostServices


#: environment variable naming extra folders of binding packages
BINDINGS_PATH_ENV = "EDGELET_BINDINGS_PATH"


#: kinds every Python Worker reaches without declaring a binding (the Cache API's
#: ``js.caches``): a Host made with ``defer_unused`` starts them with the used ones
ALWAYS_ON: frozenset[str] = frozenset({"cache"})


def search_path() -> list[str]:
    """This package's folders plus those named in ``EDGELET_BINDINGS_PATH``.

    The extra folders are added to ``__path__`` (read again at every discovery, so a test
    can set the variable after import) because that is where ``import
    edgelet.bindings.<kind>`` looks."""
    for folder in os.environ.get(BINDINGS_PATH_ENV, "").split(os.pathsep):
        if folder and folder not in __path__:
            __path__.append(folder)
    return list(__path__)


class BindingPlugin:
    """Host-side half of one binding kind.

    Why a class with defaults rather than a Protocol: most kinds need only a few of these
    hooks (services has no storage, assets no CLI), and defaults keep each plug-in short.
    """

    #: short name, also the package name and the prefix of isolate events (``kv``)
    kind: ClassVar[str] = ""
    #: the method of ``edgelet.testing.Platform`` that hands out this kind's test handles
    #: (``p.kv("NOTES")``), or None when the kind has none
    test_accessor: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.host: HostServices | None = None

    # -- configuration -------------------------------------------------------------
    def configure(self, config: PlatformConfig) -> None:
        """Record what this kind needs from the whole configuration (which Worker binds
        what, which script runs what). The host calls it once, before ``start`` and before
        any of the queries below; nothing is opened or started here."""

    def env_bindings(self, worker: WorkerConfig) -> dict[str, dict[str, Any]]:
        """Binding name -> data-only options shipped to the Worker's isolate.

        A pure query of the configuration: it records nothing, and the host asks it once
        per Worker (registration belongs in ``configure``)."""
        return {}

    def isolate_options(self, worker: WorkerConfig) -> dict[str, Any] | None:
        """Data for this kind's isolate half in ``worker`` when that half needs the host
        without an ``env`` binding (the isolate runs Durable Object classes or workflows),
        or None. The isolate half gets it in ``setup(runtime, options)``; it then reaches
        ``handle_isolate_call`` with ``runtime.call_host(kind, method, *args)``."""
        return None

    # -- life cycle ----------------------------------------------------------------
    async def start(self, host: HostServices) -> None:
        """Open storage and start background work. Called once, before serving."""
        self.host = host

    async def after_start(self) -> None:
        """Every isolate is up: resume work that needs them (queued messages, waiting
        workflow instances, alarms that fell due while the platform was down)."""

    async def stop(self) -> None:
        """Stop background work and close storage; must not lose acknowledged state."""

    async def after_reload(self, worker: str) -> None:
        """``edgelet dev`` restarted ``worker``'s isolate with its changed script (Workflows
        replays its unfinished instances against the new code here and warns)."""

    # -- runtime -------------------------------------------------------------------
    async def handle_call(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        """Answer a call a Worker made on one of this kind's bindings (data only)."""
        raise LookupError(f"binding {binding!r} ({self.kind}) has no method {method!r}")

    async def handle_isolate_call(self, worker: str, method: str, args: list[Any]) -> Any:
        """Answer ``runtime.call_host(kind, method, *args)`` from this kind's isolate half
        in ``worker``. Nothing user code can name reaches here; the plug-in checks that the
        Worker may do what it asks (it is the one that runs that class)."""
        raise LookupError(f"the {self.kind} plug-in takes no calls from its isolate half")

    def binding_call_now(self, worker: str, binding: str, method: str, args: list[Any]) -> Any:
        """:meth:`handle_call` on the channel's own read, without a task: a value, an
        ``edgelet.channel.Later`` or ``edgelet.channel.NOT_NOW`` (the default: answered by
        ``handle_call``). For hot paths only; it must not block. The host has checked that
        ``worker`` declares ``binding`` of this kind."""
        return NOT_NOW

    def isolate_call_now(self, worker: str, method: str, args: list[Any]) -> Any:
        """Answer a ``runtime.call_host`` on the channel's own read, without a task: a value,
        an ``edgelet.channel.Later`` (answered once its ``settle``, a shared commit, ran), or
        ``edgelet.channel.NOT_NOW`` to leave it to ``handle_isolate_call`` (the default).
        For per-step hot paths only; it must not block."""
        return NOT_NOW

    async def intercept(self, worker: str, request: list[Any]) -> list[Any] | None:
        """Answer an HTTP request before the Worker sees it (static assets), or None.

        ``request`` and the answer use the wire forms ``[method, url, headers, body]`` and
        ``[status, headers, body]``. Only plug-ins that override this are consulted.
        """
        return None

    def test_handle(self, worker: str, binding: str) -> Any:
        """The handle ``p.<test_accessor>(binding)`` returns in ``edgelet.testing``: the
        binding ``binding`` of Worker ``worker``, driven from the host process."""
        raise LookupError(f"{self.kind} bindings have no test handle")

    def routes(self) -> list[BaseRoute]:
        """Control-API routes, mounted under ``/cdn-cgi/edgelet/api/``."""
        return []

    def cli(self) -> click.Group | None:
        """A click group added to ``edgelet`` (``edgelet kv ...``)."""
        return None


def discover_plugins(only: Callable[[str], bool] | None = None) -> list[BindingPlugin]:
    """Instantiate every binding plug-in found under this package, in name order; with
    ``only``, those of the kinds it accepts (the others are not even imported)."""
    plugins: list[BindingPlugin] = []
    for info in sorted(pkgutil.iter_modules(search_path()), key=lambda i: i.name):
        if not info.ispkg or (only is not None and not only(info.name)):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}.plugin")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{info.name}.plugin":
                continue
            raise
        plugin_cls = getattr(module, "Plugin", None)
        if plugin_cls is not None:
            plugins.append(plugin_cls())
    return plugins


def config_modules() -> dict[str, Any]:
    """kind -> its ``config`` module, for the config loader (no host objects created)."""
    found: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(search_path()), key=lambda i: i.name):
        if not info.ispkg:
            continue
        try:
            found[info.name] = importlib.import_module(f"{__name__}.{info.name}.config")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{info.name}.config":
                raise
    return found


search_path()  # an isolate imports kinds by name (edgelet.bindings.<kind>.isolate)
