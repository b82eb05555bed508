"""D1's documented limits and bind-type rules, shared by the Worker side and the host.

The Worker side checks binds at ``bind()`` time (so the error points at the call that made
the mistake); the host checks again, since it must never trust what crosses the channel.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from edgelet.bindings.d1.errors import D1Error

log = logging.getLogger("edgelet.d1")

#: https://developers.cloudflare.com/d1/platform/limits/
MAX_STATEMENT_BYTES = 100_000
MAX_BOUND_PARAMETERS = 100
#: "Maximum string, BLOB or table row size": SQLite's own SQLITE_LIMIT_LENGTH, set on every
#: D1 connection, so a value or row D1 would refuse is refused here too
MAX_VALUE_BYTES = 2_000_000
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def check_bind_value(value: Any, index: int, where: str) -> Any:
    """``value`` as SQLite takes it, or TypeError naming parameter ``index`` (1-based).

    NaN and +-Infinity become NULL, as on Cloudflare: workerd's D1 binding sends parameters as
    JSON, where ``JSON.stringify`` writes them as ``null`` (src/cloudflare/internal/d1-api.ts).
    Cloudflare does that silently; here a warning names the parameter, since a NULL where a
    number was meant is almost always a bug upstream of the query."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        log.warning("%s: parameter %d is %s, which D1 stores as NULL (Cloudflare sends parameters as JSON, "
                    "where NaN and Infinity become null); bind None if NULL is meant, or check the value "
                    "before binding", where, index, value)
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise TypeError(f"D1_TYPE_ERROR: {where}: parameter {index} is {value}, outside SQLite's 64-bit "
                            f"integer range; bind it as a str or a float")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise TypeError(f"D1_TYPE_ERROR: Type '{type(value).__name__}' not supported for value {shown}: "
                    f"{where}: parameter {index} must be None, bool, int, float, str or bytes "
                    f"(to store a list or dict, bind json.dumps(value))")


def check_params(params: Any, where: str) -> list[Any]:
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"{where}: parameters must be a list, got {type(params).__name__}")
    if len(params) > MAX_BOUND_PARAMETERS:
        raise D1Error(f"D1_ERROR: too many SQL variables: {where} binds {len(params)} parameters; D1 allows at "
                      f"most {MAX_BOUND_PARAMETERS} per statement (split the statement, or use batch()): "
                      f"SQLITE_ERROR")
    return [check_bind_value(v, i, where) for i, v in enumerate(params, 1)]


def check_statement(sql: Any, where: str) -> str:
    if not isinstance(sql, str):
        raise TypeError(f"{where}: the SQL must be a str, got {type(sql).__name__}")
    size = len(sql.encode("utf-8", "surrogatepass"))
    if size > MAX_STATEMENT_BYTES:
        raise D1Error(f"D1_ERROR: statement too long: {where}: the SQL is {size} bytes; D1 allows at most "
                      f"{MAX_STATEMENT_BYTES} bytes per statement (bind large values as parameters, or split "
                      f"it): SQLITE_TOOBIG")
    return sql
