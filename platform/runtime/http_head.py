"""A response's status line and header block as the isolate's HTTP connection writes them.

Why a module of its own: this is the one place where a Worker's headers become bytes on the
wire, so it is where a header that would break the response is caught (a name that is not a
token, CR/LF in a value, text that is not Latin-1) and turned into :class:`BadHeader`, whose
message the connection sends as a 500 naming the header. The bytes match what uvicorn
writes on the host path (edgelet.http_protocol), status phrases included.
"""

from __future__ import annotations

import http
import re
from typing import Any

from edgelet.http_request import is_latin1


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


#: the status lines uvicorn writes on the host path, byte for byte
STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}
#: an HTTP token (RFC 9110 5.6.2): what a header name may be
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: what a header value must not hold (CR, LF and the other controls but tab)
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: header names of responses found valid (Workers send the same few), at most 1,024 kept
_GOOD_NAMES: set[str] = set()
#: headers edgelet writes itself: the length (or chunked framing) is the server's to say
_FRAMING = frozenset(("content-length", "transfer-encoding"))


class BadHeader(ValueError):
    """A response header that cannot be written; the message names it and says what to do."""


def status_line(code: int) -> bytes:
    """``HTTP/1.1 <code> <phrase>\\r\\n`` (no phrase for a code HTTP does not name)."""
    return STATUS_LINES.get(code) or _status_line(code)


def header_block(headers: Any) -> tuple[bytes, bool]:
    """The Worker's ``(name, value)`` headers as the lines of a header block, without the
    framing headers, and whether one of them asks to close the connection.

    Raises BadHeader for a header that cannot be written."""
    lines = []
    close = False
    for name, value in headers:
        if name in _FRAMING:
            continue
        if name not in _GOOD_NAMES:
            if type(name) is not str or not _TOKEN.fullmatch(name):
                raise BadHeader(f"with header {name!r}, whose name is not a valid HTTP token "
                                f"(letters, digits and !#$%&'*+-.^_`|~ only)")
            if len(_GOOD_NAMES) < 1024:
                _GOOD_NAMES.add(name)
        if _BAD_VALUE.search(value) is not None:
            raise BadHeader(f"with header {name!r}: its value holds a control character (CR, LF, "
                            f"...), which would end the header; remove it")
        if name == "connection" and "close" in value.lower():
            close = True
        lines.append(f"{name}: {value}\r\n")
    try:
        return "".join(lines).encode("latin-1"), close
    except UnicodeEncodeError:
        name, value = next(((k, v) for k, v in headers if not is_latin1(f"{k}{v}")), ("?", "?"))
        raise BadHeader(f"with header {name!r}: {value!r:.100}, which is not Latin-1 text; HTTP "
                        f"header values are bytes: percent-encode the value (urllib.parse.quote) "
                        f"or keep it to ASCII") from None


__all__ = ["BadHeader", "STATUS_LINES", "header_block", "status_line"]
