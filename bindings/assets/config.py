"""Static assets: ``assets = {directory, binding?, html_handling?, not_found_handling?, run_worker_first?}``.

A single table, not a list: a Worker has at most one assets directory. Files are served
before the Worker runs (unless ``run_worker_first``), or through ``env.<binding>.fetch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgelet.config import Section, display_path

KEYS: tuple[str, ...] = ("assets",)

HTML_HANDLING = ("auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none")
NOT_FOUND_HANDLING = ("none", "404-page", "single-page-application")


@dataclass(frozen=True)
class Assets:
    """The Worker's static-file directory (absolute, an existing folder)."""

    directory: Path
    binding: str | None = None
    html_handling: str = "auto-trailing-slash"
    not_found_handling: str = "none"
    run_worker_first: bool = False
    key_path: str = field(default="", compare=False, repr=False)


def _choice(t: Section, key: str, choices: tuple[str, ...]) -> str:
    value = t.str(key, default=choices[0])
    assert value is not None
    if value not in choices:
        raise t.error(key, f'"{value}" is not one of {", ".join(choices)}', f"set {key} to one of {', '.join(choices)}")
    return value


def parse(key: str, section: Section) -> list[Assets]:
    t = section.table(key)
    if t is None:
        return []
    t.warn_unknown(("directory", "binding", "html_handling", "not_found_handling", "run_worker_first"))
    directory = t.str(
        "directory", required=True, fix="add " + t.example("directory", '"./public"') + " naming the folder to serve"
    )
    assert directory is not None
    path = t.resolve(directory)
    if not path.is_dir():
        problem = "is not a folder" if path.exists() else "does not exist"
        raise t.error(
            "directory",
            f"{display_path(path, t.base_dir)} {problem}",
            "create the folder or correct directory "
            f"(relative paths start at the config file's folder, {display_path(t.base_dir)})",
        )
    return [
        Assets(
            directory=path,
            binding=t.binding_name("binding", required=False),
            html_handling=_choice(t, "html_handling", HTML_HANDLING),
            not_found_handling=_choice(t, "not_found_handling", NOT_FOUND_HANDLING),
            run_worker_first=bool(t.bool("run_worker_first", default=False)),
            key_path=t.path,
        )
    ]
