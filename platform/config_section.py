"""Reading one table of a config file with errors that name the file, the key and the fix.

The loader (:mod:`edgelet.config`) and every binding's ``config.py`` read their tables
through :class:`Section`, so all configuration errors have one shape.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("edgelet.config")


# --------------------------------------------------------------------------------------
# errors and display helpers
# --------------------------------------------------------------------------------------


def display_path(path: Path | str, base: Path | None = None) -> str:
    """``path`` relative to ``base`` (default: the current directory) when it lies inside.

    Messages read better with ``workers/api.py`` than with a long absolute path, but a path
    outside the base is shown in full rather than with ``../..`` hops.
    """
    p = Path(path)
    start = base if base is not None else Path.cwd()
    try:
        return p.relative_to(start).as_posix()
    except ValueError:
        return str(p)


def _sentence(text: str) -> str:
    """Trim and end with exactly one full stop, so parts join into a clean message."""
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


class ConfigError(Exception):
    """One message naming the file, the key and the fix.

    ``str(e)`` reads ``FILE[:LINE[:COL]]: KEY: PROBLEM. Fix: FIX.``; the parts stay
    available as attributes for callers that render them differently (the CLI, tests).
    """

    def __init__(
        self,
        file: Path | str,
        key: str | None,
        problem: str,
        fix: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.file = Path(file)
        self.key = key or None
        self.problem = problem
        self.fix = fix
        self.line = line
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        where = display_path(self.file)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        parts = [where]
        if self.key:
            parts.append(self.key)
        message = ": ".join(parts) + ": " + _sentence(self.problem)
        if self.fix:
            message += " Fix: " + _sentence(self.fix)
        return message

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as cls(*args); ours takes more than the message, and errors
        # may cross the host/isolate process boundary.
        return (
            _rebuild_config_error,
            (str(self.file), self.key, self.problem, self.fix, self.line, self.column),
        )


def _rebuild_config_error(
    file: str, key: str | None, problem: str, fix: str, line: int | None, column: int | None
) -> ConfigError:
    return ConfigError(file, key, problem, fix, line=line, column=column)


#: byte-order marks of encodings a config file must not be in (checked longest first)
_FOREIGN_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32 BE"), (b"\xff\xfe\x00\x00", "UTF-32 LE"),
                 (b"\xfe\xff", "UTF-16 BE"), (b"\xff\xfe", "UTF-16 LE"))


def read_config_text(path: Path, fix: str = "save the file as UTF-8") -> str:
    """The text of a config file (wrangler.toml/.json, ``.dev.vars``) as wrangler reads it: a
    UTF-8 byte-order mark (what Windows editors write) is dropped; a UTF-16/32 one (what
    PowerShell's ``>`` writes) or bytes that are not UTF-8 are a ConfigError naming the file,
    the encoding or the first bad byte, and ``fix``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read the file: {exc.strerror or exc}",
                          "check the path and its permissions") from None
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise ConfigError(path, None, f"the file is encoded as {encoding} (it starts with that "
                                          f"byte-order mark), not UTF-8", f"{fix} (without a BOM)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(path, None, f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line} "
                                      f"cannot be decoded)", fix) from None


def _describe(value: Any) -> str:
    """A short rendering of a wrong value for "expected X, got Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, builtins.bool):
        return "true" if value else "false"
    if isinstance(value, builtins.str):
        text = json.dumps(value)
        return text if len(text) <= 60 else text[:57] + '..."'
    if isinstance(value, (builtins.int, float)):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _q(text: str) -> str:
    """``text`` in double quotes, for example values in fix texts (TOML and JSON alike)."""
    return json.dumps(text)


def is_valid_cron(expr: Any) -> bool:
    """A cron Cloudflare accepts (:func:`edgelet.cron_syntax.problem` says why not)."""
    from edgelet.cron_syntax import problem  # imported lazily: only needed when crons are declared
    return problem(expr) is None


# --------------------------------------------------------------------------------------
# Section: typed access to one table, with errors that know where they are
# --------------------------------------------------------------------------------------


class Section:
    """A table from the config file plus where it came from.

    Plug-in parsers read through it so that every error names the file and the full key
    path without each parser tracking them. ``path`` is the dotted path of the table itself
    (``""`` for the top level of a single-Worker file).
    """

    def __init__(self, file: Path, path: str, data: dict[str, Any], base_dir: Path | None = None,
                 origins: dict[str, str] | None = None) -> None:
        self.file = Path(file)
        self.path = path
        self.data = data
        #: folder that relative paths (``main``, ``assets.directory``) are resolved against
        self.base_dir = base_dir if base_dir is not None else self.file.parent
        #: keys of ``data`` written elsewhere in the file -> the dotted table they were
        #: written in: a Worker seen through ``--env staging`` takes ``vars`` from
        #: ``env.staging``, so an error in it must say ``env.staging.vars``
        self.origins = origins or {}

    def __repr__(self) -> str:
        return f"Section({display_path(self.file)!s}, {self.path or '<top>'!r})"

    # -- paths and errors ----------------------------------------------------------
    def key_path(self, key: str | None) -> str:
        """Dotted path of ``key`` inside this table (``key`` may carry ``[i]``)."""
        if not key:
            return self.path
        path = self.path
        if self.origins:
            path = self.origins.get(re.split(r"[.\[]", key, maxsplit=1)[0], path)
        if not path:
            return key
        return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"

    def error(self, key: str | None, problem: str, fix: str) -> ConfigError:
        """A :class:`ConfigError` for ``key`` of this table (``None``: the table itself)."""
        return ConfigError(self.file, self.key_path(key), problem, fix)

    def example(self, key: str, literal: str) -> str:
        """``key = literal`` in the syntax of this file (TOML or JSON), for fix texts."""
        if self.file.suffix.lower() in (".json", ".jsonc", ".json5"):
            return f'"{key}": {literal}'
        return f"{key} = {literal}"

    def resolve(self, value: str) -> Path:
        """A path from the file, made absolute against the config file's folder."""
        p = Path(os.path.expanduser(value))
        return (p if p.is_absolute() else self.base_dir / p).resolve()

    def warn_unknown(self, allowed: Iterable[str]) -> None:
        """Log one warning per key not in ``allowed``; unknown keys never stop start-up."""
        allowed_set = set(allowed)
        for key in self.data:
            if key not in allowed_set:
                table = self.origins.get(key, self.path)
                where = f"in {table}" if table else "at the top level"
                log.warning("%s: unknown key '%s' %s (ignored)", display_path(self.file), key, where)

    # -- typed getters -------------------------------------------------------------
    def get(self, key: str) -> Any:
        return self.data.get(key)

    def _missing(self, key: str, fix: str, literal: str) -> ConfigError:
        return self.error(key, "required key is missing", fix or f"add {self.example(key, literal)}")

    def str(
        self,
        key: str,
        *,
        required: builtins.bool = False,
        default: builtins.str | None = None,
        fix: builtins.str = "",
    ) -> builtins.str | None:
        """A string value; a required one must also be non-empty."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key, fix, '"..."')
            return default
        if not isinstance(value, builtins.str):
            raise self.error(
                key,
                f"expected a string, got {_describe(value)}",
                fix or f"set {key} to a string, e.g. {self.example(key, _q('...'))}",
            )
        if required and not value.strip():
            raise self.error(key, "must not be empty", fix or f"set {key} to a non-empty string")
        return value

    def _range(
        self,
        key: builtins.str,
        value: float,
        lo: float | None,
        hi: float | None,
        fix: builtins.str,
    ) -> None:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if lo is not None and hi is not None:
                bounds = f"between {lo} and {hi}"
            elif lo is not None:
                bounds = f"at least {lo}"
            else:
                bounds = f"at most {hi}"
            raise self.error(key, f"must be {bounds}, got {value!r}", fix or f"set {key} to a value {bounds}")

    def int(
        self,
        key: builtins.str,
        *,
        default: builtins.int | None = None,
        min: builtins.int | None = None,
        max: builtins.int | None = None,
        required: builtins.bool = False,
        fix: builtins.str = "",
    ) -> builtins.int | None:
        """A whole number (``true`` is not one; ``10.0`` is accepted as 10)."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key, fix, "1")
            return default
        if isinstance(value, float) and value.is_integer():
            value = builtins.int(value)
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int):
            raise self.error(
                key,
                f"expected a whole number, got {_describe(value)}",
                fix or f"set {key} to a whole number (no quotes), e.g. {self.example(key, str(default or 1))}",
            )
        self._range(key, value, min, max, fix)
        return value

    def number(
        self,
        key: builtins.str,
        *,
        default: float | None = None,
        min: float | None = None,
        max: float | None = None,
        required: builtins.bool = False,
        fix: builtins.str = "",
    ) -> float | None:
        """Any number (integer or float, not a boolean), returned as ``float``."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key, fix, "1")
            return default
        if isinstance(value, builtins.bool) or not isinstance(value, (builtins.int, float)):
            raise self.error(
                key,
                f"expected a number, got {_describe(value)}",
                fix or f"set {key} to a number (no quotes), e.g. {self.example(key, str(default or 1))}",
            )
        self._range(key, value, min, max, fix)
        return float(value)

    def bool(self, key: builtins.str, *, default: builtins.bool | None = None) -> builtins.bool | None:
        """``true`` or ``false``; strings such as ``"yes"`` are rejected, not guessed."""
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, builtins.bool):
            raise self.error(
                key, f"expected true or false, got {_describe(value)}", f"set {self.example(key, 'true')} or false"
            )
        return value

    def str_list(self, key: builtins.str, *, default: Iterable[builtins.str] = ()) -> list[builtins.str]:
        """A list of strings; each bad element is reported with its index."""
        value = self.data.get(key)
        if value is None:
            return list(default)
        if not isinstance(value, list):
            raise self.error(
                key,
                f"expected a list of strings, got {_describe(value)}",
                f"write it as a list, e.g. {self.example(key, '[' + _q('...') + ']')}",
            )
        for i, item in enumerate(value):
            if not isinstance(item, builtins.str):
                raise self.error(f"{key}[{i}]", f"expected a string, got {_describe(item)}", "quote the value")
        return list(value)

    def cron_list(self, key: builtins.str) -> list[builtins.str]:
        """A list of cron expressions, each checked with :func:`is_valid_cron`."""
        crons = self.str_list(key)
        from edgelet.cron_syntax import problem
        for i, expr in enumerate(crons):
            why = problem(expr)
            if why is not None:
                raise self.error(
                    f"{key}[{i}]",
                    f"{json.dumps(expr)} is not a valid cron expression ({why})",
                    'use five fields "minute hour day-of-month month day-of-week" (weekdays 1-7 '
                    'from Sunday, or SUN-SAT), e.g. "*/5 * * * *"',
                )
        return crons

    def binding_name(self, key: builtins.str = "binding", *, required: builtins.bool = True) -> builtins.str | None:
        """A binding name: it becomes an attribute of ``env``, so it must be an identifier."""
        value = self.str(key, required=required, fix=f"add {self.example(key, _q('MY_BINDING'))}")
        if value is None:
            return None
        if not value.isidentifier():
            raise self.error(
                key,
                f"{json.dumps(value)} is not a valid binding name (it becomes env.<name>)",
                "use letters, digits and underscores, not starting with a digit, e.g. MY_BINDING",
            )
        return value

    def table(self, key: builtins.str) -> Section | None:
        """A nested table, or ``None`` when the key is absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(
                key,
                f"expected a table, got {_describe(value)}",
                f"write it as a table, e.g. [{self.key_path(key)}] in TOML or {{...}} in JSON",
            )
        return Section(self.file, self.key_path(key), value, self.base_dir)

    def tables(self, key: builtins.str) -> list[Section]:
        """A list of tables (TOML ``[[key]]``), each a Section with path ``key[i]``."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(
                key,
                f"expected a list of tables, got {_describe(value)}",
                f"write it as [[{self.key_path(key)}]] tables in TOML or a [...] array in JSON",
            )
        out: list[Section] = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.error(
                    f"{key}[{i}]", f"expected a table, got {_describe(item)}", "write each entry as {key = value, ...}"
                )
            out.append(Section(self.file, self.key_path(f"{key}[{i}]"), item, self.base_dir))
        return out
