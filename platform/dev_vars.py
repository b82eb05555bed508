"""``.dev.vars`` beside a config file: KEY=VALUE lines that become a Worker's secrets, read
as dotenv does (quotes, ``export``, comments), with errors naming the file and the line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edgelet.config_section import ConfigError, _describe, read_config_text

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass
class DevVars:
    """Secrets from ``.dev.vars`` plus the line each came from, for duplicate messages."""

    file: Path
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


def _unquote(raw: str, file: Path, lineno: int) -> str:
    """A ``.dev.vars`` value: "double" (with escapes), 'single' (literal) or bare."""
    raw = raw.strip()
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        while quote == '"' and end > 0 and raw[end - 1] == "\\":
            end = raw.find(quote, end + 1)
        if end < 0:
            raise ConfigError(file, None, "unterminated quoted value", f"close the {quote} quote", line=lineno)
        rest = raw[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ConfigError(
                file, None, "text after the closing quote", "put the whole value inside the quotes", line=lineno
            )
        inner = raw[1:end]
        if quote == '"':
            inner = (
                inner.replace("\\n", "\n")
                .replace("\\r", "\r")
                .replace("\\t", "\t")
                .replace('\\"', '"')
                .replace("\\\\", "\\")
            )
        return inner
    # bare value: as with dotenv, " #" starts a comment
    hash_at = raw.find(" #")
    return (raw[:hash_at] if hash_at >= 0 else raw).strip()


def read_dev_vars(path: Path) -> DevVars:
    """Parse ``.dev.vars`` (KEY=VALUE lines, ``#`` comments, optional quotes/``export``)."""
    out = DevVars(path)
    if not path.is_file():
        return out
    text = read_config_text(path, "save it as UTF-8 text with KEY=VALUE lines")
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(
                path,
                None,
                f"line is not KEY=VALUE: {_describe(stripped)}",
                "write it as NAME=value, or start it with # to comment it out",
                line=lineno,
            )
        if not _ENV_NAME.match(key):
            raise ConfigError(
                path,
                None,
                f"{_describe(key)} is not a valid variable name",
                "use letters, digits and underscores, e.g. API_TOKEN=...",
                line=lineno,
            )
        out.values[key] = _unquote(value, path, lineno)
        out.lines[key] = lineno
    return out


def dev_vars_path(base_dir: Path, env: str | None = None) -> Path:
    """``.dev.vars.<env>`` when an environment is chosen and that file exists, else ``.dev.vars``."""
    if env:
        candidate = base_dir / f".dev.vars.{env}"
        if candidate.is_file():
            return candidate
    return base_dir / ".dev.vars"
