"""Durable Objects: ``durable_objects = {bindings = [{name, class_name, script_name?}]}``.

``migrations`` (wrangler's class lifecycle) is accepted by the loader and not needed
locally: a class exists when a binding names it and the script defines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgelet.config import Section, require_class

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.config import PlatformConfig

KEYS: tuple[str, ...] = ("durable_objects",)


@dataclass(frozen=True)
class DurableObjectBinding:
    """``env.<binding>`` is a namespace of ``class_name`` objects run by ``script_name``.

    ``binding`` comes from wrangler's ``name`` key. ``script_name`` ``None`` means the
    declaring Worker itself runs the class.
    """

    binding: str
    class_name: str
    script_name: str | None = None
    key_path: str = field(default="", compare=False, repr=False)


def _class_name(t: Section, key: str, *, required: bool) -> str | None:
    example = t.example(key, '"Counter"')
    value = t.str(key, required=required, fix=f"set {key} to the name of a class in the script, e.g. {example}")
    if value is not None and not value.isidentifier():
        raise t.error(
            key, f"'{value}' is not a valid Python class name", f"set {key} to the class's name, e.g. {example}"
        )
    return value


def parse(key: str, section: Section) -> list[DurableObjectBinding]:
    table = section.table(key)
    if table is None:
        return []
    table.warn_unknown(("bindings",))
    out: list[DurableObjectBinding] = []
    for t in table.tables("bindings"):
        t.warn_unknown(("name", "class_name", "script_name", "environment"))
        binding = t.binding_name("name")
        class_name = _class_name(t, "class_name", required=True)
        assert binding is not None and class_name is not None
        script_name = t.str("script_name") or None
        out.append(
            DurableObjectBinding(binding=binding, class_name=class_name, script_name=script_name, key_path=t.path)
        )
    return out


def validate(config: PlatformConfig) -> None:
    """Each binding points at a Worker of this config whose script defines the class."""
    for w in config.workers:
        for d in w.decls("durable_objects"):
            require_class(config, w, d.script_name, d.class_name, d.key_path)
