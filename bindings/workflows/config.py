"""Workflows: ``workflows = [{name, binding, class_name, script_name?, concurrency?, schedules?,
limits?, retention?}]``.

``name`` identifies the workflow (its instances and their stored history); ``binding``
is how one Worker reaches it. Several Workers may bind one workflow, but it is run by a
single class in a single script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgelet.clock import parse_duration
from edgelet.config import ConfigError, Section, is_valid_cron, require_class

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.config import PlatformConfig

KEYS: tuple[str, ...] = ("workflows",)

DEFAULT_CONCURRENCY = 50_000
#: ``limits.steps``: Cloudflare's default and ceiling of steps per instance
DEFAULT_MAX_STEPS = 10_000
MAX_MAX_STEPS = 25_000
#: ``retention``: finished instances are deleted this long after they ended
DEFAULT_RETENTION_S = 7 * 86400.0
_NAME = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9-_]*$")


@dataclass(frozen=True)
class WorkflowBinding:
    """``env.<binding>`` drives workflow ``name``, run by ``class_name`` in ``script_name``."""

    binding: str
    name: str
    class_name: str
    script_name: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    schedules: list[str] = field(default_factory=list)
    max_steps: int = DEFAULT_MAX_STEPS
    retention_s: float = DEFAULT_RETENTION_S
    key_path: str = field(default="", compare=False, repr=False)


def parse(key: str, section: Section) -> list[WorkflowBinding]:
    out: list[WorkflowBinding] = []
    for t in section.tables(key):
        t.warn_unknown(("name", "binding", "class_name", "script_name", "concurrency", "schedules", "limits",
                        "retention"))
        name = t.str("name", required=True, fix="add " + t.example("name", '"my-workflow"'))
        assert name is not None
        if not _NAME.match(name) or len(name) > 64:
            raise t.error(
                "name",
                f"'{name}' is not a valid workflow name",
                "use at most 64 letters, digits, dashes or underscores, e.g. my-workflow",
            )
        binding = t.binding_name("binding")
        example = t.example("class_name", '"MyWorkflow"')
        class_name = t.str("class_name", required=True, fix=f"add {example} naming the WorkflowEntrypoint class")
        assert binding is not None and class_name is not None
        if not class_name.isidentifier():
            raise t.error("class_name", f"'{class_name}' is not a valid Python class name", f"set {example}")
        out.append(
            WorkflowBinding(
                binding=binding,
                name=name,
                class_name=class_name,
                script_name=t.str("script_name") or None,
                concurrency=t.int("concurrency", default=DEFAULT_CONCURRENCY, min=1) or DEFAULT_CONCURRENCY,
                schedules=_schedules(t, name),
                max_steps=_max_steps(t, name),
                retention_s=_retention(t, name),
                key_path=t.path,
            )
        )
    return out


def _schedules(t: Section, workflow: str) -> list[str]:
    """``schedules``: cron expressions; a bad one is named with its workflow."""
    crons = t.str_list("schedules")
    for i, expr in enumerate(crons):
        if not is_valid_cron(expr):
            raise t.error(f"schedules[{i}]",
                          f"workflow '{workflow}': schedule {expr!r} is not a valid cron expression",
                          'use five fields "minute hour day-of-month month day-of-week", e.g. "0 * * * *"')
    return crons


def _max_steps(t: Section, workflow: str) -> int:
    """``limits = { steps = N }``: steps one instance may record (Cloudflare: 1 to 25,000)."""
    limits = t.table("limits")
    if limits is None:
        return DEFAULT_MAX_STEPS
    limits.warn_unknown(("steps",))
    value = limits.int("steps", default=DEFAULT_MAX_STEPS,
                       fix=f"workflow '{workflow}': set limits.steps to a whole number from 1 to {MAX_MAX_STEPS}")
    assert value is not None
    if not 1 <= value <= MAX_MAX_STEPS:
        raise limits.error("steps", f"workflow '{workflow}': limits.steps must be between 1 and {MAX_MAX_STEPS}, "
                                    f"got {value}", f"set limits.steps to at most {MAX_MAX_STEPS}")
    return value


def _retention(t: Section, workflow: str) -> float:
    """``retention``: how long a finished instance is kept, "7 days" or milliseconds."""
    value = t.get("retention")
    if value is None:
        return DEFAULT_RETENTION_S
    try:
        seconds = parse_duration(value, what=f"workflow '{workflow}': retention")
    except ValueError as exc:
        raise t.error("retention", str(exc), 'use a duration like "7 days" or "12 hours"') from None
    if seconds <= 0:
        raise t.error("retention", f"workflow '{workflow}': retention must be longer than zero",
                      'use a duration like "7 days"')
    return seconds


def validate(config: PlatformConfig) -> None:
    """The class exists in its script, and one workflow name means one class in one script."""
    defined: dict[str, tuple[str, str, str]] = {}  # name -> (script, class, "where")
    for w in config.workers:
        for d in w.decls("workflows"):
            target = require_class(config, w, d.script_name, d.class_name, d.key_path)
            first = defined.get(d.name)
            if first is None:
                defined[d.name] = (target.name, d.class_name, f"Worker '{w.name}' ({d.key_path})")
                continue
            script, cls, where = first
            if (script, cls) != (target.name, d.class_name):
                raise ConfigError(
                    w.config_file,
                    f"{d.key_path}.class_name",
                    f"workflow '{d.name}' is already defined as class {cls} in Worker '{script}' by {where}, "
                    f"here as class {d.class_name} in Worker '{target.name}'",
                    f"give the workflows different names, or bind the existing one with "
                    f'class_name = "{cls}" and script_name = "{script}"',
                )
