"""What a Python Worker may send over Workers RPC (a service binding's methods), checked as
Cloudflare's SDK checks it.

Why: edgelet carries RPC values with cloudpickle, which takes any Python object, while on
Cloudflare ``workers.python_to_rpc`` converts them to JavaScript (``to_js``) and workerd
structured-clones the result. A tuple or a ``bytearray`` is refused there with ``TypeError:
<class 'tuple'> cannot be sent over RPC.`` (src/workers/_rpc.py of cloudflare/workers-py), an
awaitable likewise, and an instance of one's own class has no JavaScript form at all, so a
call that worked locally failed once deployed. Functions are allowed (Cloudflare passes them
as RPC stubs).
"""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable
from typing import Any

#: plain values that convert to JavaScript as they are
_LEAVES = (str, int, float, bytes, memoryview, datetime.datetime, BaseException)


def _allowed_object(value: Any) -> bool:
    """Platform objects with a JavaScript form (Request, Response, Headers, FormData, Blob,
    bindings, JsObject): edgelet's own classes, which the SDK converts with ``js_object``."""
    module = type(value).__module__ or ""
    return module.startswith(("edgelet.", "workers", "js", "pyodide")) or hasattr(value, "js_object")


class _Refused(Exception):
    """A value inside the one checked cannot be sent: ``message(shown)`` says why, ``path``
    is where inside (its segments innermost first, added as the check unwinds)."""

    def __init__(self, message: Callable[[str], str]) -> None:
        self.message = message
        self.path: list[str] = []

    def error(self, shown: str) -> TypeError:
        """The TypeError the caller sees: ``shown`` (the call and argument) and the path."""
        return TypeError(self.message(shown + "".join(reversed(self.path))))


def check_rpc_value(value: Any, where: Callable[[], str]) -> None:
    """Raise TypeError, naming ``where()`` and the position inside the value, for what
    Cloudflare's RPC cannot send.

    Why ``where`` is a function and the position is built only on a refusal: every RPC
    call's arguments and results pass here, and a value that may be sent (nearly all)
    should cost no strings, however large or nested it is."""
    try:
        _check(value)
    except _Refused as refused:
        raise refused.error(where()) from None


def check_rpc_args(args: tuple[Any, ...], kwargs: dict[str, Any], call: Callable[[], str]) -> None:
    """``check_rpc_value`` for every argument of one RPC call: the TypeError names the
    argument ("argument 2 of <call()>", "argument key= of ...") and where inside it.

    Why one function for all of them: a call's arguments are checked on every RPC (service
    bindings and Durable Object stubs); a loop here builds no ``where`` callable per
    argument, and ``call()`` is asked for only when a value is refused."""
    plain = _PLAIN
    for value in args:
        if type(value) in plain:
            continue
        try:
            _check(value)
        except _Refused as refused:
            raise refused.error(f"argument {_position(args, value) + 1} of {call()}") from None
    for key, value in kwargs.items():
        if type(value) in plain:
            continue
        try:
            _check(value)
        except _Refused as refused:
            raise refused.error(f"argument {key}= of {call()}") from None


#: exact types that need no look inside: what nearly every value is made of (a subclass,
#: e.g. an IntEnum, takes the slower path and is allowed there too)
_PLAIN = frozenset((str, int, float, bool, bytes, type(None)))


def _position(items: Any, item: Any) -> int:
    """The index of ``item`` (by identity) in ``items``: asked only on a refusal, so that
    the loops over a value need no ``enumerate``."""
    return next(i for i, x in enumerate(items) if x is item)


def _check(value: Any) -> None:
    """Raise _Refused for what cannot be sent. The exact list and dict (the usual
    containers) are walked here, skipping plain members without a call; everything else
    goes to ``_check_other``."""
    kind = type(value)
    plain = _PLAIN
    if kind is dict:
        for key, item in value.items():
            if type(item) in plain:
                continue
            try:
                _check(item)
            except _Refused as refused:
                refused.path.append(f"[{key!r}]")
                raise
    elif kind is list:
        for item in value:
            if type(item) in plain:
                continue
            try:
                _check(item)
            except _Refused as refused:
                refused.path.append(f"[{_position(value, item)}]")
                raise
    elif kind not in plain:
        _check_other(value)


def _check_other(value: Any) -> None:
    if value is None or isinstance(value, _LEAVES):
        return
    if isinstance(value, (tuple, bytearray)):
        fix = "a list" if isinstance(value, tuple) else "bytes"
        raise _Refused(lambda shown: f"{type(value)} cannot be sent over RPC. ({shown}: send {fix} instead; "
                                     f"Cloudflare's Python SDK refuses it)")
    if inspect.isawaitable(value):
        raise _Refused(lambda shown: f"Awaitable {type(value)} cannot be sent over RPC. ({shown}: await it "
                                     f"first and send the result)")
    if isinstance(value, dict):
        for key, item in value.items():
            try:
                _check(item)
            except _Refused as refused:
                refused.path.append(f"[{key!r}]")
                raise
        return
    if isinstance(value, (list, set, frozenset)):
        for i, item in enumerate(value):
            try:
                _check(item)
            except _Refused as refused:
                refused.path.append(f"[{i}]" if isinstance(value, list) else " (a member)")
                raise
        return
    if callable(value) or isinstance(value, type) or _allowed_object(value):
        return  # a function becomes an RPC stub on Cloudflare
    raise _Refused(lambda shown: f"{type(value).__module__}.{type(value).__qualname__} cannot be sent over "
                                 f"RPC. ({shown}: Cloudflare converts RPC values to JavaScript, and an instance "
                                 f"of your own class has no JavaScript form; send a dict of its fields, e.g. "
                                 f"dataclasses.asdict(value) or vars(value))")
