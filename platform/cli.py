"""``edgelet``: the command line, modelled on wrangler so the habits carry over.

``dev`` runs the platform; the other commands talk to a running ``dev`` through the control
API (see :mod:`edgelet.client`). Binding plug-ins add their own groups (``kv``, ``queues``,
``workflows``, ...).
"""

from __future__ import annotations

import sys

from edgelet import prestart

if prestart.wanted(sys.argv):  # first, so that its imports overlap ours (edgelet.prestart)
    prestart.launch()

import asyncio
import errno
import json
import logging
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgelet.client import ApiClient, port_options


class _Formatter(logging.Formatter):
    _TAGS = {"DEBUG": "dbg", "INFO": "inf", "WARNING": "wrn", "ERROR": "err", "CRITICAL": "crt"}

    def format(self, record: logging.LogRecord) -> str:
        tag = self._TAGS.get(record.levelname, record.levelname.lower())
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"{time.strftime('%H:%M:%S')} [edgelet:{tag}] {text}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("edgelet")
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    root.propagate = False


class _Commands(click.Group):
    """The CLI's own commands, and the binding plug-ins' groups found only when asked for.

    Why lazily: importing every plug-in and its CLI module (and httpx through them) costs
    more than a hundred milliseconds that ``edgelet dev`` would pay before it starts. A
    command name is looked up first as the plug-in of that kind (``durable-objects`` ->
    ``edgelet.bindings.durable_objects``), so ``edgelet kv ...`` imports only KV's; listing
    (``--help``) or a name no kind matches imports them all."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._all_plugins: dict[str, click.Command] | None = None

    def _plugin_groups(self) -> dict[str, click.Command]:
        if self._all_plugins is None:
            from edgelet.bindings import discover_plugins
            self._all_plugins = {}
            for plugin in discover_plugins():
                group = plugin.cli()
                if group is not None and group.name:
                    self._all_plugins[group.name] = group
        return self._all_plugins

    def _plugin_group(self, name: str) -> click.Command | None:
        import importlib
        kind = name.replace("-", "_")
        if self._all_plugins is None and kind.isidentifier():
            from edgelet.bindings import search_path
            search_path()
            try:
                module = importlib.import_module(f"edgelet.bindings.{kind}.plugin")
            except ModuleNotFoundError as exc:
                if exc.name not in (f"edgelet.bindings.{kind}", f"edgelet.bindings.{kind}.plugin"):
                    raise
            else:
                plugin_cls = getattr(module, "Plugin", None)
                group = plugin_cls().cli() if plugin_cls is not None else None
                if group is not None and group.name == name:
                    return group
        return self._plugin_groups().get(name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_groups()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from edgelet.cli_text import guard
        command = super().get_command(ctx, cmd_name) or self._plugin_group(cmd_name)
        return None if command is None else guard(command)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgelet")
def main() -> None:
    """A local edge platform for Python Workers and durable Workflows."""


@main.command()
@click.option("-c", "--config", "configs", multiple=True, type=click.Path(dir_okay=False),
              help="Config file (repeat for several Workers; the first is primary). Default: the "
                   "first wrangler_like.toml / wrangler.toml / .json / .jsonc here or in a parent folder.")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535), envvar="EDGELET_PORT",
              help="Port to listen on (0: any free port; the one chosen is printed; or $EDGELET_PORT).")
@click.option("--ip", default="127.0.0.1", show_default=True)
@click.option("--persist-to", default=None, type=click.Path(file_okay=False),
              help="Folder for all persistent state.  [default: .edgelet/state beside the config file]")
@click.option("--in-memory", is_flag=True, help="Keep all state in memory (lost on exit).")
@click.option("-e", "--env", "env", default=None, help="Use the config's [env.NAME] tables.")
@click.option("--var", "var_items", multiple=True, metavar="KEY:VALUE",
              help="A string var for every Worker, over the config and .dev.vars (repeatable).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--max-body-size", default=100 * 1024 * 1024, show_default=True, type=click.IntRange(min=0),
              help="Largest request body accepted, in bytes.")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a connection has to send a request's headers before it is closed.")
@click.option("--no-reload", is_flag=True,
              help="Do not reload Workers when scripts, the config or .dev.vars change.")
@click.option("--test-scheduled", is_flag=True,
              help="As wrangler's: GET /__scheduled?cron=EXPR on a Worker runs its scheduled handler.")
def dev(configs: tuple[str, ...], port: int, ip: str, persist_to: str | None, in_memory: bool,
        env: str | None, var_items: tuple[str, ...], log_level: str, max_body_size: int,
        header_timeout: float, no_reload: bool, test_scheduled: bool) -> None:
    """Run the Workers of a config file locally and serve them over HTTP."""
    from edgelet.config import ConfigError, load_config
    from edgelet.config_env import parse_var
    from edgelet.dev_lock import DevLock, FolderLocked
    from edgelet.dev_session import DevSession, StartFailed

    setup_logging(log_level)
    try:
        overrides = dict(parse_var(v) for v in var_items)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--var") from None
    cwd = Path.cwd()

    def load() -> Any:
        return load_config([Path(c) for c in configs] or None, cwd=cwd, env=env,
                           var_overrides=overrides)

    try:
        config = load()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not configs and config.files[0].parent != cwd.resolve():  # found in a parent folder
        logging.getLogger("edgelet").info("Using %s", _shown(config.files[0], cwd))
    state_dir = None
    if not in_memory:
        base = config.files[0].parent if persist_to is None else cwd
        state_dir = (base / (persist_to or ".edgelet/state")).resolve()
    lock = DevLock(state_dir) if state_dir is not None else None
    if lock is not None:
        try:
            lock.acquire(port, ip)
        except FolderLocked as exc:
            raise click.ClickException(str(exc)) from None
        except OSError:  # a folder it cannot write: the host's check_folder says so in full
            lock = None
    try:
        sock = _bind(ip, port)
        if lock is not None:
            lock.update(sock.getsockname()[1], ip)
        session = DevSession(config, load, sock=sock, ip=ip, state_dir=state_dir,
                             max_body=max_body_size, reload=not no_reload,
                             header_timeout=header_timeout, env=env, make_server=_make_server,
                             test_scheduled=test_scheduled)
        import uvloop
        uvloop.run(session.run())
    except StartFailed as exc:
        click.echo(f"✘ {exc}", err=True)
        sys.exit(1)
    finally:
        if lock is not None:
            lock.release()


def _shown(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def _make_server(app: Any, header_timeout: float, on_exit: Callable[[], None] | None = None) -> Any:
    """uvicorn's server with the platform's own signal handling.

    uvicorn re-raises the signal that stopped it once it has shut down, which would end
    the process before the host had stopped its isolates and plug-ins; here SIGINT and
    SIGTERM only ask the server to exit, and ``_serve`` then stops the host and returns 0.
    ``on_exit`` runs at the first signal: it ends ``tail`` streams and requests still in
    flight, which uvicorn would otherwise wait for (5 s) and then cancel with tracebacks.
    """
    import contextlib

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_exit)
            try:
                yield
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

        def request_exit(self) -> None:
            if self.should_exit:  # a second Ctrl-C: stop waiting for open connections
                self.force_exit = True
            self.should_exit = True
            if on_exit is not None:
                on_exit()

    from edgelet.http_handoff import protocol_class
    from edgelet.websockets import websocket_options
    # interface named: the app's __call__ returns a coroutine without being one (SwappableApp)
    return Server(uvicorn.Config(app, loop="none", lifespan="off", access_log=False, interface="asgi3",
                                 log_level="warning", timeout_graceful_shutdown=5,
                                 **websocket_options(),
                                 http=protocol_class(app, header_timeout)))


def _bind_error(ip: str, port: int, exc: OSError) -> str:
    """Why ``ip:port`` cannot be listened on, and the fix that matches the cause: a port in use
    is another server; an --ip that is no address (or not one of this machine's) is the --ip."""
    where = f"cannot listen on {ip}:{port}: {exc.strerror}"
    if isinstance(exc, socket.gaierror):
        return (f"{where}: --ip {ip!r} is not an IP address. Fix: give an address such as "
                f"127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"{where}: {ip} is not an address of this machine. Fix: give one of its addresses, "
                f"127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    if exc.errno == errno.EACCES:
        return (f"{where}: ports below 1024 need administrator rights. Fix: choose a port of 1024 "
                f"or more with --port (8787 is the default)")
    return (f"{where} (is another `edgelet dev` running?). Stop it or choose another port "
            f"with --port.")


def _bind(ip: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((ip, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(_bind_error(ip, port, exc)) from None
    sock.listen(2048)
    return sock


@main.command()
@port_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--worker", default=None, help="Only this Worker's lines.")
def tail(client: ApiClient, as_json: bool, worker: str | None) -> None:
    """Stream the Workers' logs and platform events from a running `edgelet dev`."""
    import os

    import httpx

    def stop(signum: int, frame: Any) -> None:
        """Ctrl-C ends tail at once, wherever it is: set explicitly, not left to Python's
        KeyboardInterrupt, which a SIGINT ignored by whatever started tail (a background
        job) turns off, and which code reading the stream may catch on the way out."""
        try:
            sys.stdout.flush()
        except (OSError, RuntimeError):  # (interrupted inside a write of its own)
            pass
        os.write(2, b"tail stopped\n")
        os._exit(0)

    signal.signal(signal.SIGINT, stop)
    try:
        for event in client.stream("/tail"):
            kind = event.get("type")
            if kind == "hello":
                workers = event.get("workers", [])
                if worker is not None and worker not in workers:
                    raise click.BadParameter(
                        f"no Worker named {worker!r}; this `edgelet dev` runs: "
                        f"{', '.join(workers) or 'none'}", param_hint="--worker")
                if not as_json:
                    click.echo(f"Connected to edgelet dev; Workers: {', '.join(workers)}", err=True)
                continue
            if kind == "bye":
                click.echo("edgelet dev stopped; tail ends", err=True)
                return
            if worker is not None and event.get("worker") != worker:
                continue
            if as_json:
                click.echo(json.dumps(event))
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(event.get("time", time.time())))
                who = event.get("worker") or "edgelet"
                click.echo(f"{stamp} [{who}] {event.get('level', 'info')}: {event.get('message', '')}")
    except (httpx.TransportError, httpx.StreamError) as exc:
        click.echo(f"the connection to edgelet dev was lost ({type(exc).__name__}); tail ends", err=True)
        sys.exit(1)
    # the server ended the stream without saying goodbye (an older edgelet)
    click.echo("edgelet dev closed the log stream; tail ends", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
