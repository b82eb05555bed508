"""``edgelet.testing``: the whole platform inside a test, with virtual time.

    async with Platform("wrangler_like.toml", clock="virtual") as p:
        resp = await p.fetch("/start")
        await p.advance("2 days")

The platform runs in the test's event loop (isolates are real processes), keeps state in
memory unless ``persist=`` names a folder, opens no TCP port unless ``port=`` is given, and
stops every isolate when the block ends, whether the test passed or not.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json as _json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgelet.clock import Clock, VirtualClock, parse_duration
from edgelet.config import PlatformConfig, load_config, load_config_dict

log = logging.getLogger("edgelet.testing")

#: how long the platform may stay busy before ``advance`` gives up and says what is busy
SETTLE_TIMEOUT = 60.0


class MockNotUsedError(AssertionError):
    """A mocked step or event was never reached by any instance during the block."""


class SettleTimeout(TimeoutError):
    """The platform stayed busy too long while virtual time was being advanced."""


class TestResponse:
    """What ``p.fetch`` returns: the Worker API's response shape, awaitable body readers."""

    __test__ = False  # not a pytest test class

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        from edgelet.runtime.http_types import Headers
        self.status = status
        self.status_code = status
        self.headers = Headers(headers)
        self._body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    async def text(self) -> str:
        return self._body.decode("utf-8", errors="replace")

    async def json(self) -> Any:
        return _json.loads(self._body)

    async def bytes(self) -> bytes:
        return self._body

    def __repr__(self) -> str:
        return f"<TestResponse {self.status}>"


def _plugin_doc(plugin: Any) -> str:
    return (type(plugin).test_handle.__doc__ or "").strip()


def _seconds(duration: Any) -> float:
    """Seconds from "2 days", a timedelta, or a number of milliseconds (SPEC 8's rule)."""
    if isinstance(duration, _dt.timedelta):
        seconds = duration.total_seconds()
        if seconds < 0:
            raise ValueError(f"cannot advance time backwards ({duration!r}); pass a positive duration")
        return seconds
    if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration < 0:
        raise ValueError(f"cannot advance time backwards ({duration!r} ms); pass a positive duration")
    if isinstance(duration, str) and duration.strip().startswith("-"):
        raise ValueError(f"cannot advance time backwards ({duration!r}); pass a positive duration")
    return parse_duration(duration, what="advance")


class Platform:
    """An in-process edgelet for tests. See the module docstring."""

    __test__ = False

    def __init__(self, config: str | Path | Mapping[str, Any] | PlatformConfig = "wrangler_like.toml",
                 clock: str = "real", auto_advance: bool = False, persist: str | Path | None = None,
                 *, port: int | None = None, base_dir: str | Path | None = None) -> None:
        if clock not in ("real", "virtual"):
            raise ValueError(f"clock must be 'real' or 'virtual', got {clock!r}")
        if auto_advance and clock != "virtual":
            raise ValueError("auto_advance=True needs clock='virtual'")
        self._config_source = config
        self._base_dir = Path(base_dir) if base_dir else None
        self.clock: Clock = VirtualClock() if clock == "virtual" else Clock()
        self.auto_advance = auto_advance
        self.persist = Path(persist) if persist is not None else None
        self.port = port
        self.host: Any = None
        self._app: Any = None
        self._client: Any = None
        self._server: Any = None
        self._server_task: asyncio.Task[Any] | None = None
        self._auto_task: asyncio.Task[None] | None = None
        self._workflows: dict[tuple[str, str], Any] = {}
        self.url: str | None = None

    # -- life cycle ------------------------------------------------------------------------
    def _load(self) -> PlatformConfig:
        source = self._config_source
        if isinstance(source, PlatformConfig):
            return source
        if isinstance(source, Mapping):
            return load_config_dict(dict(source), base_dir=self._base_dir or Path.cwd())
        path = Path(source)
        if not path.is_absolute() and self._base_dir is not None:
            path = self._base_dir / path
        return load_config([path])

    async def __aenter__(self) -> Platform:
        import httpx

        from edgelet.host import Host
        from edgelet.server import EdgeletApp

        config = self._load()  # ConfigError propagates with the config message
        self.host = Host(config, state_dir=self.persist, clock=self.clock)
        await self.host.start()
        self._app = EdgeletApp(self.host)
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._app),
                                         base_url="http://localhost", timeout=None)
        if self.port is not None:
            await self._serve_tcp()
        if self.auto_advance:
            self._auto_task = asyncio.ensure_future(self._auto_advance())
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        unused: list[str] = []
        try:
            if self._auto_task is not None:
                self._auto_task.cancel()
            for handle in self._workflows.values():
                unused.extend(f"workflow {handle.workflow_name!r}: {m}" for m in handle._mocks.unused())
                handle._mocks.clear()
        finally:
            if self._server is not None:
                self._server.should_exit = True
                if self._server_task is not None:
                    await asyncio.gather(self._server_task, return_exceptions=True)
            if self._client is not None:
                await self._client.aclose()
            if self.host is not None:
                await self.host.stop()
        if unused:
            message = ("mocks set on steps or events that no instance reached: " + ", ".join(unused)
                       + ". Check the step names, or remove the mocks.")
            if exc_type is None:
                raise MockNotUsedError(message)
            warnings.warn(message, stacklevel=2)

    async def _serve_tcp(self) -> None:
        import socket

        import uvicorn
        sock = socket.socket()
        sock.bind(("127.0.0.1", self.port or 0))
        sock.listen(512)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        from edgelet.http_protocol import CoalescingHttpToolsProtocol
        from edgelet.websockets import websocket_options
        self._server = uvicorn.Server(uvicorn.Config(self._app, lifespan="off", log_level="warning",
                                                     http=CoalescingHttpToolsProtocol,
                                                     **websocket_options()))
        self._server_task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)

    # -- requests ----------------------------------------------------------------------------
    def _worker(self, worker: str | None) -> str:
        if worker is None:
            return self.host.config.primary.name
        self.host.config.worker(worker)  # raises with the known names
        return worker

    async def fetch(self, path_or_url: str, worker: str | None = None, *, method: str = "GET",
                    headers: Mapping[str, str] | None = None, body: Any = None,
                    json: Any = None) -> TestResponse:
        """Send an HTTP request through the platform's router (assets, /cdn-cgi/, Workers)."""
        name = self._worker(worker)
        hdrs = dict(headers or {})
        if name != self.host.config.primary.name:
            hdrs.setdefault("host", f"{name}.localhost")
        if json is not None:
            body = _json.dumps(json).encode()
            hdrs.setdefault("content-type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        url = path_or_url if "://" in path_or_url else path_or_url if path_or_url.startswith("/") \
            else "/" + path_or_url
        resp = await self._client.request(method, url, headers=hdrs, content=body)
        return TestResponse(resp.status_code, list(resp.headers.multi_items()), resp.content)

    async def websocket(self, path: str, worker: str | None = None, *,
                        headers: Mapping[str, str] | None = None,
                        protocols: list[str] | None = None) -> Any:
        """Open a WebSocket to a Worker (no port needed): ``async with await p.websocket("/chat")
        as ws: await ws.send("hi"); await ws.receive()``. See edgelet.websocket_client."""
        from edgelet.websocket_client import TestWebSocket
        name = self._worker(worker)
        host = "localhost" if name == self.host.config.primary.name else f"{name}.localhost"
        return await TestWebSocket(self._app, path, host, dict(headers or {}),
                                   list(protocols or [])).connect()

    async def scheduled(self, cron: str = "* * * * *", worker: str | None = None, *,
                        scheduled_time: int | None = None) -> Any:
        """Run a Worker's ``scheduled`` handler now, as if ``cron`` fired; its
        ``scheduledTime`` is ``scheduled_time`` (epoch ms) if given, else the platform's now."""
        if scheduled_time is not None and (isinstance(scheduled_time, bool) or not isinstance(scheduled_time, int)
                                           or scheduled_time < 0):
            raise TypeError(f"p.scheduled(): scheduled_time must be epoch milliseconds (an int >= 0), "
                            f"got {scheduled_time!r:.40}")
        return await self.host.scheduled(self._worker(worker), cron, scheduled_time)

    # -- bindings from outside ------------------------------------------------------------------
    def _declaring(self, kind: str, binding: str, worker: str | None) -> str:
        """The Worker that declares ``binding`` of ``kind`` (the first, or ``worker``)."""
        candidates = [worker] if worker else [w.name for w in self.host.config.workers]
        for name in candidates:
            self.host.config.worker(name)  # raises with the known names
            owner = self.host.env_table[name].get(binding)
            if owner is not None and owner[0].kind == kind:
                return name
        where = f"Worker {worker!r}" if worker else "any Worker"
        known = sorted(f"{name}.{b}" for name in candidates
                       for b, owner in self.host.env_table[name].items() if owner[0].kind == kind)
        have = f"{kind} bindings: {', '.join(known)}" if known else f"no Worker there has a {kind} binding"
        raise LookupError(f"no {kind} binding named {binding!r} in {where} ({have}); check the name "
                          f"or pass worker=")

    def __getattr__(self, name: str) -> Any:
        """``p.<accessor>(binding, worker=None)`` for every plug-in that names a
        ``test_accessor`` (``p.kv``, ``p.d1``, ...): the plug-in supplies the handle."""
        host = self.__dict__.get("host")
        if host is None or name.startswith("_"):
            raise AttributeError(name)
        for plugin in host.plugins:
            if plugin.test_accessor == name:
                def accessor(binding: str, worker: str | None = None, _plugin: Any = plugin) -> Any:
                    return _plugin.test_handle(self._declaring(_plugin.kind, binding, worker), binding)
                accessor.__doc__ = _plugin_doc(plugin)
                return accessor
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def queue(self, binding: str, worker: str | None = None) -> Any:
        """The queue producer ``binding``: ``send``/``sendBatch`` plus ``messages()``."""
        plugin = self.host.plugin("queues")
        try:
            owner: str | None = self._declaring("queues", binding, worker)
        except LookupError:
            owner = None  # a queue's own name (a dead-letter queue has no producer binding)
        return plugin.queue_handle(owner, binding)

    def durable_object(self, binding: str, worker: str | None = None) -> Any:
        """The Durable Object namespace ``binding``: ids, stubs and ``storage(id)``."""
        return self.host.plugin("durable_objects").namespace_handle(
            self._declaring("durable_objects", binding, worker), binding)

    def workflow(self, binding: str, worker: str | None = None) -> WorkflowTestHandle:
        """The Workflow bound as ``binding`` (or named so): create/get instances, set mocks."""
        plugin = self.host.plugin("workflows")
        try:
            owner = self._declaring("workflows", binding, worker)
        except LookupError:
            owner = None
        if owner is None:  # accept the workflow's own name too
            for w in self.host.config.workers:
                for decl in w.decls("workflows"):
                    if decl.name == binding and (worker is None or w.name == worker):
                        owner, binding = w.name, decl.binding
                        break
                if owner:
                    break
        if owner is None:
            raise LookupError(f"no workflow binding or workflow named {binding!r}; check the config")
        key = (owner, binding)
        if key not in self._workflows:
            handle = plugin.workflow_handle(owner, binding)
            name = next(d.name for d in self.host.config.worker(owner).decls("workflows")
                        if d.binding == binding)
            self._workflows[key] = WorkflowTestHandle(handle, plugin.mocks(name), name)
        return self._workflows[key]

    # -- time ---------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """The platform clock, in epoch seconds."""
        return self.clock.now()

    async def replay(self, history: dict[str, Any]) -> Any:
        """Check a workflow history saved from ``inst.export()`` against the current code;
        raises AssertionError naming the step when the code would no longer replay it."""
        report = await self.host.plugin("workflows")._engine().replay(history)
        if not report["ok"]:
            raise AssertionError(f"workflow {history.get('workflow')!r} instance {history.get('id')!r}: "
                                 f"{report['error']}")
        return report

    async def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until no event is in flight and no background work runs."""
        try:
            await asyncio.wait_for(self.host.wait_idle(), timeout)
        except TimeoutError:
            raise SettleTimeout(f"the platform stayed busy for {timeout:g} s "
                                f"({self.host.busy_report()}); "
                                f"a handler may be waiting on something that never happens") from None

    async def advance(self, duration: Any) -> None:
        """Move virtual time forward by ``duration``, firing every timer due on the way.

        Each timer fires at its own time and the work it starts settles before the clock
        moves on, so timers set by that work fire within the same call when they fall due.
        """
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            raise RuntimeError("advance() needs Platform(..., clock='virtual')")
        target = clock.now() + _seconds(duration)
        await self.settle()
        while True:
            due = clock.next_due()
            if due is None or due > target:
                break
            clock.set_time(due)
            clock.fire_due()
            await self.settle()
        clock.set_time(target)
        clock.fire_due()
        await self.settle()

    async def _auto_advance(self) -> None:
        """Jump to the next timer whenever everything is idle."""
        clock = self.clock
        assert isinstance(clock, VirtualClock)
        while True:
            await self.host.wait_idle()
            await asyncio.sleep(0.005)
            if not self.host.is_idle:
                continue
            due = clock.next_due(housekeeping=False)
            if due is None:
                await asyncio.sleep(0.01)
                continue
            clock.set_time(due)
            clock.fire_due()


class WorkflowTestHandle:
    """A workflow binding seen from a test: the binding's methods plus the mocks."""

    __test__ = False

    def __init__(self, handle: Any, mocks: Any, workflow_name: str) -> None:
        self._handle = handle
        self._mocks = mocks
        self.workflow_name = workflow_name

    def __getattr__(self, name: str) -> Any:
        if hasattr(self._mocks, name) and name not in ("clear", "unused"):
            return getattr(self._mocks, name)
        return getattr(self._handle, name)
