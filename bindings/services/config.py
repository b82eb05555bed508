"""Service bindings: ``services = [{binding, service, entrypoint?}]``.

``env.<binding>`` calls another Worker of the same config directly (``fetch`` or RPC),
optionally on a named ``WorkerEntrypoint`` class instead of its default export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgelet.config import ConfigError, Section, require_class

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.config import PlatformConfig

KEYS: tuple[str, ...] = ("services",)


@dataclass(frozen=True)
class ServiceBinding:
    """``env.<binding>`` reaches Worker ``service`` (at ``entrypoint`` if given)."""

    binding: str
    service: str
    entrypoint: str | None = None
    key_path: str = field(default="", compare=False, repr=False)


def parse(key: str, section: Section) -> list[ServiceBinding]:
    out: list[ServiceBinding] = []
    for t in section.tables(key):
        t.warn_unknown(("binding", "service", "entrypoint", "environment"))
        binding = t.binding_name("binding")
        service = t.str(
            "service", required=True, fix="add " + t.example("service", '"other-worker"') + " naming a Worker"
        )
        assert binding is not None and service is not None
        entrypoint = t.str("entrypoint")
        if entrypoint is not None and not entrypoint.isidentifier():
            raise t.error(
                "entrypoint",
                f"'{entrypoint}' is not a valid Python class name",
                "set entrypoint to a class name in that Worker's script, or remove it",
            )
        out.append(ServiceBinding(binding=binding, service=service, entrypoint=entrypoint or None, key_path=t.path))
    return out


def validate(config: PlatformConfig) -> None:
    """The service is a Worker of this config; its entrypoint class exists in its script."""
    for w in config.workers:
        for d in w.decls("services"):
            if not config.has_worker(d.service):
                known = ", ".join(x.name for x in config.workers)
                raise ConfigError(
                    w.config_file,
                    f"{d.key_path}.service",
                    f"service '{d.service}' is not a Worker in the configuration (Workers: {known})",
                    "add it with -c or a [[workers]] table, or correct service",
                )
            if d.entrypoint:
                require_class(
                    config, w, d.service, d.entrypoint, d.key_path, script_key="service", class_key="entrypoint"
                )
