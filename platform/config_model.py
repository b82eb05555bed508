"""The configuration objects the loader produces: a :class:`PlatformConfig` of validated
:class:`WorkerConfig` s. Data only, so everything that reads config (the host, plug-ins,
the CLI) depends on this module and not on the loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Limits:
    """Per-invocation limits: wrangler's ``limits.cpu_ms`` plus two of edgelet's own."""

    cpu_ms: int = 30_000
    memory_mb: int = 512
    request_timeout_ms: int = 60_000


@dataclass
class WorkerConfig:
    """One Worker, fully validated. Paths are absolute."""

    name: str
    main: Path
    config_file: Path
    compatibility_date: str | None = None
    compatibility_flags: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    crons: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    bindings: dict[str, list[Any]] = field(default_factory=dict)
    #: dotted path of this Worker's table in its file ("" or "workers[i]"), for messages
    key_path: str = field(default="", compare=False, repr=False)

    @property
    def is_wasm(self) -> bool:
        return self.main.suffix.lower() == ".wasm"

    def decls(self, kind: str) -> list[Any]:
        """The parsed declarations of one binding kind (empty when it has none)."""
        return self.bindings.get(kind, [])


@dataclass
class PlatformConfig:
    """Every Worker the platform runs; the first is the primary one (as with wrangler)."""

    workers: list[WorkerConfig]
    files: list[Path] = field(default_factory=list)

    def worker(self, name: str) -> WorkerConfig:
        for w in self.workers:
            if w.name == name:
                return w
        known = ", ".join(w.name for w in self.workers) or "none"
        raise KeyError(f"no Worker named {name!r} in the configuration (known: {known})")

    def has_worker(self, name: str) -> bool:
        return any(w.name == name for w in self.workers)

    @property
    def primary(self) -> WorkerConfig:
        return self.workers[0]
