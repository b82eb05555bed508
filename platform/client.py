"""A small client for the control API, used by every CLI command that talks to ``dev``."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click


class ApiClient:
    """Calls ``/cdn-cgi/edgelet/api/...`` and unwraps Cloudflare's envelope."""

    def __init__(self, port: int = 8787, ip: str = "127.0.0.1", token: str | None = None) -> None:
        self.port = port
        self.ip = ip
        self.base = f"http://{ip}:{port}/cdn-cgi/edgelet/api"
        token = token or os.environ.get("EDGELET_API_TOKEN")
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        #: the last answer's ``result_info`` (a paged listing's page and totals)
        self.last_info: dict[str, Any] | None = None

    def answers(self) -> bool:
        """True when something accepts connections on ``--ip``/``--port`` (half a second at
        most): a binding's CLI then asks that ``edgelet dev``, else reads the state folder."""
        import socket

        try:
            with socket.create_connection((self.ip, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx  # here, not at the top: `edgelet dev` imports this module and never calls
        headers = self.headers
        if "json" in kwargs:
            # encoded here, ASCII-only: a lone surrogate (JSON "\\ud800" in an argument) travels
            # as its escape and the server answers it with a 400, where httpx's own UTF-8
            # encoding raised UnicodeEncodeError in the CLI
            kwargs["content"] = json.dumps(kwargs.pop("json")).encode("ascii")
            headers = {**headers, "content-type": "application/json"}
        try:
            resp = httpx.request(method, self.base + path, headers=headers, timeout=60, **kwargs)
        except httpx.ConnectError:
            raise click.ClickException(self.no_dev()) from None
        try:
            data = resp.json()
        except ValueError:
            raise click.ClickException(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:200]}") from None
        if not data.get("success", False):
            errors = "; ".join(f"{e.get('message')} (code {e.get('code')})" for e in data.get("errors", []))
            raise click.ClickException(errors or f"HTTP {resp.status_code}")
        self.last_info = data.get("result_info")
        return data.get("result")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def get_page(self, path: str, **params: Any) -> tuple[Any, dict[str, Any] | None]:
        """A paged listing: its result and its ``result_info`` (page, per_page, total_count)."""
        result = self.get(path, **params)
        return result, self.last_info

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, content: bytes, params: dict[str, Any] | None = None) -> Any:
        return self.request("PUT", path, content=content, params=params or {})

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def stream(self, path: str) -> Iterator[dict[str, Any]]:
        import httpx
        try:
            with httpx.stream("GET", self.base + path, headers=self.headers, timeout=None) as resp:
                for line in resp.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.ConnectError:
            raise click.ClickException(self.no_dev()) from None

    def no_dev(self) -> str:
        """Nobody answers on --port: say so, and which port the ``dev`` holding this
        project's state folder listens on, when one does (the usual cause: dev was started
        with another --port)."""
        from edgelet.dev_lock import read_holder

        text = f"no `edgelet dev` answers at {self.base}; start one or pass --port"
        try:
            holder = read_holder(default_state_dir())
        except Exception:  # an unreadable config or folder: the plain message must do
            holder = None
        if holder is not None and holder.port and holder.port != self.port:
            text += (f" (the `edgelet dev` of this project, pid {holder.pid}, listens on "
                     f"{holder.ip}:{holder.port}: pass --port {holder.port})")
        return text


def port_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --port/--ip and hand the command an ``ApiClient`` as ``client``."""

    @click.option("--port", default=8787, show_default=True, type=int, envvar="EDGELET_PORT",
                  help="Port of `edgelet dev` (or $EDGELET_PORT).")
    @click.option("--ip", default="127.0.0.1", show_default=True)
    @functools.wraps(fn)
    def wrapper(*args: Any, port: int, ip: str, **kwargs: Any) -> Any:
        return fn(*args, client=ApiClient(port, ip), **kwargs)

    return wrapper


def loads_arg(text: str) -> Any:
    """A JSON command-line value, held to the control API's rules (edgelet.api.parse_json):
    ValueError, never RecursionError (a deeply nested value was a traceback), for what the
    server would refuse anyway: nesting past ``MAX_JSON_DEPTH`` levels, NaN or Infinity."""
    from edgelet.api import ApiError, parse_json
    try:
        return parse_json(text, what="the value")
    except ApiError as exc:
        raise ValueError(exc.message.removeprefix("the value is not valid JSON: ")) from None


#: what ``--persist-to`` defaults to, as ``edgelet dev`` says it
PERSIST_TO_DEFAULT = ".edgelet/state beside the config file"


def default_state_dir(config: str | None = None) -> Path:
    """The state folder ``edgelet dev`` uses when not given ``--persist-to``: ``.edgelet/state``
    beside the config file (``config``, else the one found here or in a parent folder, as
    dev finds it), or here when there is none. Why: a CLI run from a project's subfolder
    must read the folder dev writes, not invent an empty one under the subfolder."""
    if config is not None:
        return Path(config).resolve().parent / ".edgelet" / "state"
    from edgelet.config import ConfigError, find_config
    try:
        return find_config(Path.cwd()).parent / ".edgelet" / "state"
    except ConfigError:
        return Path.cwd().resolve() / ".edgelet" / "state"


def _persist_to(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    if value is not None:
        return str(Path(value).resolve())
    config = ctx.params.get("config")  # -c FILE, when the command has it and it was given
    return str(default_state_dir(config if isinstance(config, str) else None))


def persist_to_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # noqa: A002
    """``--persist-to DIR`` for a command that reads the state folder when no dev answers;
    the command gets an absolute path, defaulting as :func:`default_state_dir` says."""
    return click.option("--persist-to", default=None, type=click.Path(file_okay=False), callback=_persist_to,
                        help=f"{help}  [default: {PERSIST_TO_DEFAULT}]")


def offline_notice(port: int, ip: str, state_dir: Path) -> None:
    """One line on stderr: no ``dev`` answered on ``--port``, so the state folder is read
    directly; and, when the folder's lock says a ``dev`` on another port holds it, which."""
    from edgelet.dev_lock import read_holder

    line = f"no `edgelet dev` answers on {ip}:{port}; reading the state folder {state_dir} directly"
    holder = read_holder(state_dir)
    if holder is not None and holder.port != port:
        line += (f" (an `edgelet dev` on port {holder.port}, pid {holder.pid}, holds this folder: "
                 f"pass --port {holder.port} to ask it instead)")
    click.echo(line, err=True)


def backend_options(online: Callable[[ApiClient], Any], offline: Callable[..., Any], *, name: str,
                    creates: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add --port/--ip, --persist-to and wrangler's (hidden) --local to a binding's command,
    and hand it a backend as the argument ``name``: ``online(client)`` when an ``edgelet
    dev`` answers, else ``offline(state_folder, create=...)`` (``create`` only for the command
    function named ``creates``: a read must not make a folder). A ValueError or TypeError
    the command raises (a refused key or value, already explained) becomes its message."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @port_options
        @persist_to_option("State folder, used when no `edgelet dev` answers.")
        @click.option("--local", is_flag=True, hidden=True,
                      help="Accepted for wrangler habits; edgelet state is always local.")
        @functools.wraps(fn)
        def wrapper(*args: Any, client: ApiClient, persist_to: str, local: bool, **kwargs: Any) -> Any:
            if client.answers():
                backend = online(client)
            else:
                backend = offline(Path(persist_to).resolve(), create=fn.__name__ == creates)
                offline_notice(client.port, client.ip, Path(persist_to).resolve())
            try:
                return fn(*args, **{name: backend}, **kwargs)
            except (ValueError, TypeError) as exc:
                raise click.ClickException(str(exc)) from None

        return wrapper

    return decorate


#: transfers at least this large show a progress bar (in a terminal)
PROGRESS_BYTES = 8 * 1024 * 1024


def with_progress(chunks: Iterator[bytes], total: int, label: str) -> Iterator[bytes]:
    """``chunks`` as they are, with a progress bar on stderr while they are consumed, when
    a bar is shown at all (:mod:`edgelet.progress`) and ``total`` is worth watching."""
    from edgelet.progress import progress_bar
    with progress_bar(label, total, unit="bytes", when=total >= PROGRESS_BYTES) as bar:
        for chunk in chunks:
            yield chunk
            bar.advance(len(chunk))


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """An aligned table (rich: bold headers in a terminal, plain text when piped or under
    NO_COLOR); ``--json`` output is for scripts."""
    if not rows:
        click.echo("(none)")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = sys.stdout
    tty = out.isatty()
    table = Table(box=None, header_style="bold cyan", pad_edge=False, show_edge=False)
    for c in columns:
        table.add_column(c.upper(), overflow="fold")
    for r in rows:
        table.add_row(*(Text(str(r.get(c))) if r.get(c) is not None else Text("") for c in columns))
    console = Console(file=out, no_color=bool(os.environ.get("NO_COLOR")) or None, highlight=False,
                      width=None if tty else 10_000)
    if tty:
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():  # piped: no trailing padding for scripts
        click.echo(line.rstrip())
