"""Command-line values that cannot become UTF-8 are a usage error naming the parameter.

Why: on POSIX, Python turns argv bytes that are not UTF-8 into lone surrogates
(``surrogateescape``), and a JSON argument may spell one (``"\\ud800"``). Every command that
talks to ``edgelet dev`` sends its values as UTF-8 (a JSON body, a URL), where such a string
raised ``UnicodeEncodeError`` deep inside httpx: a traceback instead of a message. Paths are
exempt: a file name may be any bytes, and ``click.Path`` values are opened, not sent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

_GUARDED = "_edgelet_text_guarded"


def _first_bad(value: Any) -> str | None:
    """The first string inside ``value`` (str, or lists/tuples/dicts of them) UTF-8 cannot
    encode, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            bad = _first_bad(k) or _first_bad(v)
            if bad is not None:
                return bad
    elif isinstance(value, (list, tuple)):
        for item in value:
            bad = _first_bad(item)
            if bad is not None:
                return bad
    return None


def _explain(text: str) -> str:
    for i, ch in enumerate(text):
        if "\udc80" <= ch <= "\udcff":  # surrogateescape: a byte that did not decode
            return (f"it is not UTF-8 text (byte 0x{ord(ch) - 0xDC00:02x} at character {i + 1}). "
                    f"Pass UTF-8 (e.g. convert it with iconv -t UTF-8)")
        if "\ud800" <= ch <= "\udfff":
            return (f"it holds a lone surrogate (\\u{ord(ch):04x} at character {i + 1}), which UTF-8 "
                    f"cannot carry. Use a complete character (a \\ud83d\\ude00-style pair in JSON)")
    return "it is not UTF-8 text"  # pragma: no cover - only called for strings that failed


def _check(ctx: click.Context) -> None:
    for param in ctx.command.params:
        if isinstance(param.type, (click.Path, click.File)) or param.name is None:
            continue
        bad = _first_bad(ctx.params.get(param.name))
        if bad is not None:
            raise click.BadParameter(_explain(bad), ctx=ctx, param=param)


def guard(command: click.Command) -> click.Command:
    """Wrap ``command`` (and, for a group, every command under it) once, so its callback
    first rejects parameter values that UTF-8 cannot encode."""
    if getattr(command, _GUARDED, False):
        return command
    setattr(command, _GUARDED, True)
    callback = command.callback
    if callback is not None:
        command.callback = _checked(callback)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            guard(sub)
    return command


def _checked(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check(click.get_current_context())
        return callback(*args, **kwargs)

    return wrapper
