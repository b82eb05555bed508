"""Config and ``.dev.vars`` edits under ``edgelet dev``: what changed, and what to restart.

Why a diff: restarting everything on every edit would drop in-flight work of Workers the
edit never touched. A Worker whose own settings changed (vars, secrets, main,
compatibility, limits) gets a new isolate; anything the binding plug-ins were configured
with (bindings, crons, Workers added or removed) restarts the whole platform, since the
plug-ins read the config once. An edit that does not load keeps the running version.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from edgelet.config import ConfigError, PlatformConfig, WorkerConfig

log = logging.getLogger("edgelet")

#: fields of a Worker that only its own isolate sees
ISOLATE_FIELDS = ("main", "compatibility_date", "compatibility_flags", "vars", "secrets", "limits")


@dataclasses.dataclass
class Plan:
    """What an edit asks for: nothing, some Workers' isolates, or the whole platform."""

    workers: list[str]
    everything: bool = False
    why: str = ""
    #: the files whose edit this is, for the message
    cause: str = "the config"


def plan(old: PlatformConfig, new: PlatformConfig) -> Plan:
    old_by = {w.name: w for w in old.workers}
    new_by = {w.name: w for w in new.workers}
    if list(old_by) != list(new_by):
        added = sorted(set(new_by) - set(old_by))
        removed = sorted(set(old_by) - set(new_by))
        why = "; ".join(filter(None, [f"added {', '.join(added)}" if added else "",
                                      f"removed {', '.join(removed)}" if removed else ""]))
        return Plan(sorted(new_by), True, why or "the order of Workers changed")
    changed: list[str] = []
    for name, w in new_by.items():
        o = old_by[name]
        if _differs(o, w, ("bindings", "crons", "config_file")):
            return Plan(sorted(new_by), True, f"the bindings or crons of {name} changed")
        if _differs(o, w, ISOLATE_FIELDS):
            changed.append(name)
    return Plan(changed)


def _differs(a: WorkerConfig, b: WorkerConfig, fields: tuple[str, ...]) -> bool:
    return any(getattr(a, f) != getattr(b, f) for f in fields)


def watched_files(config: PlatformConfig, env: str | None) -> set[Path]:
    """The config files and every ``.dev.vars`` (``.dev.vars.<env>``) beside them."""
    out: set[Path] = set()
    for f in config.files:
        out.add(f.resolve())
        out.add(f.parent.resolve() / ".dev.vars")
        if env:
            out.add(f.parent.resolve() / f".dev.vars.{env}")
    return out


class ConfigWatcher:
    """Reloads the config when one of its files changes and hands the result on."""

    def __init__(self, load: Callable[[], PlatformConfig], current: Callable[[], PlatformConfig],
                 apply: Callable[[PlatformConfig, Plan], Awaitable[None]], env: str | None) -> None:
        self._load = load
        self._current = current
        self._apply = apply
        self._env = env

    async def run(self) -> None:
        import watchfiles
        files = watched_files(self._current(), self._env)
        before = _stats(files)  # an edit made before the watch is set up is not lost
        folders = sorted({f.parent for f in files})
        changes_seen = watchfiles.awatch(*folders, debounce=50, step=20, recursive=False)
        first = asyncio.ensure_future(changes_seen.__anext__())
        await asyncio.sleep(0.05)
        edited = sorted(f.name for f, stat in _stats(files).items() if stat != before[f])
        if edited:
            await self.reload(", ".join(edited))
        changes = await first
        while True:
            edited = sorted({Path(p).name for _, p in changes if Path(p).resolve() in files})
            if edited:
                await self.reload(", ".join(edited))
                files = watched_files(self._current(), self._env)
            changes = await changes_seen.__anext__()

    async def reload(self, what: str) -> None:
        try:
            new = self._load()
        except ConfigError as exc:
            log.error("%s changed but does not load; still running the previous version.\n%s",
                      what, exc)
            return
        p = plan(self._current(), new)
        if not p.workers and not p.everything:
            log.info("%s changed; no Worker is affected", what)
            return
        p.cause = what
        await self._apply(new, p)


def _stats(files: set[Path]) -> dict[Path, tuple[int, int] | None]:
    out: dict[Path, tuple[int, int] | None] = {}
    for f in files:
        try:
            st = f.stat()
            out[f] = (st.st_mtime_ns, st.st_size)
        except OSError:
            out[f] = None
    return out


def describe(p: Plan) -> str:
    if p.everything:
        return f"{p.cause} changed: restarting all Workers ({p.why}): {', '.join(p.workers)}"
    return f"{p.cause} changed: restarting {', '.join(p.workers)}"
