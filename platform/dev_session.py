"""One ``edgelet dev`` run: the host, the HTTP server, and what a developer at the terminal
gets around them (the start-up table, hotkeys, config reload, the debugger relay).

Why a session object: a config edit that changes bindings replaces the whole host, while
the listening socket, the terminal, the log stream and the state-folder lock stay; the
server calls the session's current app through :class:`SwappableApp`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgelet.config import PlatformConfig
from edgelet.dev_reload import ConfigWatcher, Plan, describe
from edgelet.logbus import LogBus

log = logging.getLogger("edgelet")


class StartFailed(Exception):
    """The platform could not start; the message says why (printed as is)."""


class SwappableApp:
    """ASGI app that forwards to the current :class:`EdgeletApp` (replaced on a full reload)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        #: cleared while the host is replaced: requests wait for the new one
        self.ready = asyncio.Event()
        self.ready.set()
        #: set while the host's deferred plug-ins start (``Host.start_deferred``): requests
        #: to ``/cdn-cgi/`` (the control API, the explorer) wait for it; Worker requests not
        self.control_ready: asyncio.Event | None = None

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """The current app's own coroutine, returned rather than awaited in one of ours:
        uvicorn awaits what an app returns, and a wrapper frame per request is CPU spent
        on every request for a swap that happens on a config edit."""
        if self.ready.is_set() and (self.control_ready is None or self.control_ready.is_set()):
            return self.app(scope, receive, send)
        return self._after_swap(scope, receive, send)

    async def _after_swap(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self.ready.is_set():
            await self.ready.wait()
        gate = self.control_ready
        if gate is not None and scope.get("path", "").startswith("/cdn-cgi/"):
            await gate.wait()
        await self.app(scope, receive, send)

    def begin_shutdown(self) -> None:
        self.app.begin_shutdown()


class DevSession:
    def __init__(self, config: PlatformConfig, load: Callable[[], PlatformConfig], *,
                 sock: socket.socket, ip: str, state_dir: Path | None, max_body: int,
                 reload: bool, header_timeout: float, env: str | None,
                 make_server: Callable[..., Any], test_scheduled: bool = False) -> None:
        self.config = config
        self.load = load
        self.sock = sock
        self.ip = ip
        self.port = sock.getsockname()[1]  # with --port 0 the kernel chose it
        self.state_dir = state_dir
        self.max_body = max_body
        self.reload = reload
        self.header_timeout = header_timeout
        self.env = env
        self.make_server = make_server
        #: ``--test-scheduled``: Workers answer ``/__scheduled`` (edgelet.runtime.isolate)
        self.test_scheduled = test_scheduled
        self.logbus = LogBus()
        self.host: Any = None
        self.app: SwappableApp | None = None
        self.server: Any = None
        self.hotkeys: Any = None
        self.relay: Any = None
        self._console: Any = None
        #: the host being started (``_import_server`` watches it)
        self._starting_host: Any = None
        #: the work ``_after_ready`` started (cancelled when dev stops)
        self._warming: asyncio.Future[None] | None = None

    @property
    def console(self) -> Any:
        """dev's rich console, made when first used (after "Ready on": rich is not needed
        before it)."""
        if self._console is None:
            from edgelet.dev_ui import make_console
            self._console = make_console()
        return self._console

    # -- hosts ---------------------------------------------------------------------------
    async def _start_host(self, config: PlatformConfig) -> Any:
        from edgelet.host import Host
        from edgelet.state import StateError
        from edgelet.supervisor import IsolateStartError
        host = Host(config, state_dir=self.state_dir, watch=self.reload, logbus=self.logbus,
                    defer_unused=True)
        host.debugger = self.relay.path if self.relay is not None else None
        host.test_scheduled = self.test_scheduled
        self._starting_host = host
        try:
            await host.start()
        except IsolateStartError as exc:
            raise StartFailed(f"{exc}\n{exc.traceback or ''}".rstrip()) from None
        except StateError as exc:  # a read-only folder, a damaged file: the message says it all
            raise StartFailed(str(exc)) from None
        return host

    def _new_app(self, host: Any) -> Any:
        from edgelet.server import EdgeletApp
        return EdgeletApp(host, max_body=self.max_body)

    async def apply(self, new: PlatformConfig, plan: Plan) -> None:
        """A config edit that loads: restart what it touches, say which."""
        log.info("%s", describe(plan))
        if not plan.everything:
            from edgelet.supervisor import IsolateStartError
            for worker in new.workers:
                if worker.name in plan.workers:
                    try:
                        await self.host.replace_worker(worker)
                    except IsolateStartError as exc:
                        log.error("%s\n%s", exc, exc.traceback or "", extra={"worker": worker.name})
            self.config = self.host.config
            return
        assert self.app is not None
        old_host, old_config = self.host, self.config
        self.app.ready.clear()
        if self._warming is not None:  # the old host's deferred plug-ins: stopped with it
            self._warming.cancel()
        try:
            # docs/websockets.md: a change that replaces the platform closes the sockets.
            # Left open, a socket's next message would go to the stopped host, whose isolate
            # would come back with the old config outside the new platform, and no answer.
            await old_host.close_websockets(f"edgelet dev restarted all Workers ({plan.why}); reconnect")
            await old_host.stop()
            try:
                host = await self._start_host(new)
            except StartFailed as exc:
                log.error("the new config does not start; back to the previous version.\n%s", exc)
                host, new = await self._start_host(old_config), old_config
            self.host, self.config = host, new
            self.app.app = self._new_app(host)
            self.app.control_ready = asyncio.Event()
            self._after_ready()
        finally:
            self.app.ready.set()
        self.print_table()

    # -- the terminal ---------------------------------------------------------------------
    def print_table(self) -> None:
        from edgelet.dev_ui import print_startup
        state = str(self.state_dir) if self.state_dir else "in memory (lost on exit)"
        print_startup(self.console, self.host, self.ip, self.port, state)

    def _hotkey_actions(self) -> dict[str, Callable[[], None]]:
        from edgelet.dev_ui import EXPLORER_PATH, base_url, hotkey_line, open_in_browser
        url = base_url(self.ip, self.port)

        def clear() -> None:  # screen and scrollback, as `clear` does
            self.console.file.write("\033[H\033[2J\033[3J")
            self.console.print(hotkey_line())

        return {"b": lambda: open_in_browser(self.console, url + "/"),
                "e": lambda: open_in_browser(self.console, url + EXPLORER_PATH),
                "c": clear,
                "x": lambda: self.server.request_exit()}

    # -- running --------------------------------------------------------------------------
    async def run(self) -> None:
        from edgelet.debug_relay import DebugRelay
        from edgelet.dev_ui import Hotkeys, hotkey_line
        from edgelet.logbus import LogBusHandler
        logging.getLogger("edgelet").addHandler(LogBusHandler(self.logbus))
        interactive = Hotkeys.available()
        if interactive:  # its hotkeys are handed over once they exist (after Ready)
            self.relay = DebugRelay(self, None)
            await self.relay.start()
        try:
            starting = asyncio.ensure_future(self._start_host(self.config))
            await self._import_server(starting)
            self.host = await starting
            self.app = SwappableApp(self._new_app(self.host))
            self.app.control_ready = asyncio.Event()  # until _after_ready's work is done
            self.server = self.make_server(self.app, self.header_timeout,
                                           on_exit=self.app.begin_shutdown)
            serving = asyncio.ensure_future(self.server.serve(sockets=[self.sock]))
            while not self.server.started and not serving.done():
                await asyncio.sleep(0.005)
            watcher = None
            if self.server.started:
                from edgelet.dev_ui import base_url
                if self.reload:  # watching before "Ready": an edit right after it is seen
                    watcher = asyncio.ensure_future(ConfigWatcher(
                        self.load, lambda: self.config, self.apply, self.env).run())
                    for _ in range(3):
                        await asyncio.sleep(0)
                # plain, before anything else: the line scripts and people wait for
                sys.stdout.write(f"Ready on {base_url(self.ip, self.port)}\n")
                sys.stdout.flush()
                self.print_table()
                if interactive:
                    self.hotkeys = Hotkeys(self.console, self._hotkey_actions())
                    self.relay.hotkeys = self.hotkeys
                    self.console.print(hotkey_line())
                    self.hotkeys.start()
                sys.stdout.flush()
                self._after_ready()
            try:
                await serving
            finally:
                if watcher is not None:
                    watcher.cancel()
                if self._warming is not None:
                    self._warming.cancel()
                if self.hotkeys is not None:
                    self.hotkeys.stop()
                await self.host.stop()
                log.info("stopped")
        finally:
            if self.relay is not None:
                await self.relay.stop()

    async def _import_server(self, starting: asyncio.Future[Any]) -> None:
        """Import the HTTP server's modules while the host waits for its fork server and
        isolates (processes of their own, on the other core): these tens of milliseconds
        of imports then come off the time to Ready instead of adding to it."""
        while not starting.done():
            host = self._starting_host
            if host is not None and host.waiting_for_processes:
                break
            await asyncio.sleep(0.002)
        import uvicorn  # noqa: F401

        import edgelet.http_handoff  # noqa: F401
        import edgelet.http_protocol  # noqa: F401
        import edgelet.server  # noqa: F401
        if self.reload:  # the file watchers (watchfiles) start on anyio's asyncio backend
            try:
                import anyio._backends._asyncio  # noqa: F401
                import watchfiles  # noqa: F401
            except ImportError:  # another anyio layout: the watchers import it themselves
                pass

    def _after_ready(self) -> None:
        """Start what was left out of the start on purpose (no Worker request needs it):
        ``/cdn-cgi/`` requests wait for it meanwhile."""
        assert self.app is not None and self.app.control_ready is not None
        if self._warming is not None:
            self._warming.cancel()
        self._warming = asyncio.ensure_future(self._warm_up(self.host, self.app, self.app.control_ready))

    @staticmethod
    async def _warm_up(host: Any, app: SwappableApp, gate: asyncio.Event) -> None:
        """The plug-ins of kinds no Worker declares, the control API and explorer app, and
        the websockets library: what the first ``/cdn-cgi/`` request or WebSocket would
        otherwise wait for."""
        try:
            await asyncio.sleep(0)  # "Ready on" and the table are out first
            await host.start_deferred()
            app.app.control  # noqa: B018  (the /cdn-cgi/ app is built on first access)
            import edgelet.ws_protocol  # noqa: F401  (the websockets library)
        except Exception:
            log.exception("starting the control API failed")
        finally:
            gate.set()
            if app.control_ready is gate:
                app.control_ready = None

    @property
    def isolates(self) -> dict[str, Any]:
        """The current host's isolates (the debugger relay holds their deadlines)."""
        return self.host.isolates if self.host is not None else {}
