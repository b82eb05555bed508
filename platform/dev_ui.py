"""``edgelet dev`` in a terminal: the start-up table and wrangler's hotkeys.

Why rich: the table must be readable with nine Workers and many bindings, coloured in a
terminal and plain when piped or under ``NO_COLOR`` (rich decides both the way every other
well-behaved tool does). Hotkeys read single keys in cbreak mode (Ctrl-C still signals) and
only when stdin is a terminal, so a ``dev`` run by a script or a test never touches stdin.
"""

from __future__ import annotations

import asyncio
import os
import sys
import termios
import threading
import tty
import webbrowser
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.console import Console
    from rich.table import Table

# rich is imported where it is used: ``edgelet dev`` prints "Ready on" before it needs rich

EXPLORER_PATH = "/cdn-cgi/explorer"

_KIND_TITLES = {"kv": "KV", "queues": "Queues", "durable_objects": "Durable Objects",
                "workflows": "Workflows", "d1": "D1", "r2": "R2", "services": "Services",
                "assets": "Assets", "ai": "AI"}

HOTKEYS = (("b", "open a browser"), ("e", "open the explorer"), ("c", "clear console"),
           ("x", "to exit"))


def make_console(stderr: bool = False) -> Console:
    """A console for dev's output: colours only in a terminal and without NO_COLOR; wide
    enough when piped that a URL is never wrapped (logs and tests read lines)."""
    from rich.console import Console
    stream = sys.stderr if stderr else sys.stdout
    tty_out = stream.isatty()
    return Console(file=stream, no_color=bool(os.environ.get("NO_COLOR")) or None,
                   width=None if tty_out else 200, soft_wrap=not tty_out, highlight=False)


def base_url(ip: str, port: int) -> str:
    shown = "127.0.0.1" if ip in ("0.0.0.0", "") else ("localhost" if ip == "::" else ip)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def worker_url(name: str, primary: bool, ip: str, port: int) -> str:
    """The primary answers on the bare address, the others on ``NAME.localhost``."""
    return base_url(ip, port) if primary else f"http://{name}.localhost:{port}"


def binding_lines(host: Any, worker: Any) -> list[str]:
    """``Kind: NAME, NAME`` per binding kind a Worker has, plus its vars and secrets."""
    by_kind: dict[str, list[str]] = {}
    for name, (plugin, _options) in host.env_table.get(worker.name, {}).items():
        by_kind.setdefault(plugin.kind, []).append(name)
    for kind, decls in worker.bindings.items():
        for d in decls:
            if kind == "queues" and type(d).__name__.endswith("Consumer"):
                by_kind.setdefault(kind, []).append(f"consumes {d.queue}")
            elif kind == "assets" and not getattr(d, "binding", None):
                by_kind.setdefault(kind, []).append(str(getattr(d, "directory", "")))
    lines = [f"{_KIND_TITLES.get(k, k)}: {', '.join(v)}" for k, v in sorted(by_kind.items())]
    if worker.vars:
        lines.append(f"Vars: {', '.join(worker.vars)}")
    if worker.secrets:
        lines.append(f"Secrets: {', '.join(worker.secrets)}")
    return lines


def startup_table(host: Any, ip: str, port: int) -> Table:
    from rich.table import Table
    from rich.text import Text
    table = Table(title=None, show_lines=True, header_style="bold cyan")
    table.add_column("Worker", style="bold", no_wrap=True)
    table.add_column("URL", style="green", no_wrap=True)
    table.add_column("Bindings")
    table.add_column("Crons", no_wrap=True)
    primary = host.config.primary.name
    for w in host.config.workers:
        name = f"{w.name} (primary)" if w.name == primary and len(host.config.workers) > 1 else w.name
        cells = (name, worker_url(w.name, w.name == primary, ip, port),
                 "\n".join(binding_lines(host, w)) or "-", "\n".join(w.crons) or "-")
        table.add_row(*(Text(c) for c in cells))  # names are data, never rich markup
    return table


def print_startup(console: Console, host: Any, ip: str, port: int, state: str) -> None:
    """The table, the explorer's URL and where state lives."""
    console.print(startup_table(host, ip, port))
    console.print(f"Explorer: [link]{base_url(ip, port)}{EXPLORER_PATH}[/link]")
    console.print(f"State: {state}", style="dim")


def hotkey_line() -> str:
    return "  ".join(f"[bold]\\[{k}][/bold] {label}" for k, label in HOTKEYS)


class Hotkeys:
    """Single-key commands on a terminal's stdin; ``pause()`` hands the terminal back
    (the debugger relay needs line input with echo)."""

    def __init__(self, console: Console, actions: dict[str, Callable[[], None]]) -> None:
        self.console = console
        self.actions = actions
        self._fd = sys.stdin.fileno()
        self._saved: list[Any] | None = None
        self._active = False

    @staticmethod
    def available() -> bool:
        """Only in an interactive terminal (as wrangler: never when stdin is piped)."""
        try:
            return sys.stdin.isatty()
        except (AttributeError, ValueError):
            return False

    def start(self) -> None:
        self._saved = termios.tcgetattr(self._fd)
        self.resume()

    def resume(self) -> None:
        if self._active or self._saved is None:
            return
        tty.setcbreak(self._fd)
        asyncio.get_running_loop().add_reader(self._fd, self._on_input)
        self._active = True

    def pause(self) -> None:
        """Stop reading keys and restore the terminal's line mode."""
        if not self._active:
            return
        asyncio.get_running_loop().remove_reader(self._fd)
        if self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._active = False

    def stop(self) -> None:
        try:
            self.pause()
        except (RuntimeError, termios.error):  # the loop is gone: still restore the terminal
            if self._saved is not None:
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._saved = None

    def _on_input(self) -> None:
        try:
            data = os.read(self._fd, 64)
        except OSError:
            return
        if not data:  # the terminal went away
            self.pause()
            return
        for ch in data.decode(errors="ignore").lower():
            action = self.actions.get(ch)
            if action is not None:
                action()


#: webbrowser registers the known browsers on first use, and two threads doing that at once
#: (`b` then `e` pressed quickly) lose one of the pages
_BROWSERS_FOUND = threading.Lock()


def open_in_browser(console: Console, url: str) -> None:
    """Open ``url`` in a thread (the browser program may run until it is closed)."""
    console.print(f"Opening {url}")

    def run() -> None:
        try:
            with _BROWSERS_FOUND:
                browser = webbrowser.get()
        except webbrowser.Error:
            console.print(f"No browser found: open {url} yourself (or set BROWSER)")
            return
        browser.open(url)

    threading.Thread(target=run, daemon=True).start()
