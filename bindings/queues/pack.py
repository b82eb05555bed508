"""Many messages in one SQLite value: the ``messages`` column of a ``queue_batches`` row.

Why: storing a ``sendBatch`` of 100 as one row (not 100) is what makes sending, taking
and settling cost one row write per batch instead of one per message; the per-message
fields (id, send time, content type, body, and the send order ``origin``) travel together
in this blob. The format is a run of self-delimited records, so two packed values
concatenate into one by plain byte concatenation:

    <q origin> <q timestamp_ms> <H len(id)> <H len(content_type)> <I len(body)> id content_type body

(little-endian; ids and content types are ASCII/UTF-8, bodies are the stored bytes).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

_HEAD = struct.Struct("<qqHHI")
_HEAD_SIZE = _HEAD.size

#: one packed message: ``(origin, id, timestamp_ms, content_type, body)``
Packed = tuple[int, str, int, str, bytes]


def pack(messages: Iterable[Packed]) -> bytes:
    """The blob for ``messages``, in the order given."""
    parts: list[bytes] = []
    head = _HEAD.pack
    for origin, message_id, timestamp_ms, content_type, body in messages:
        mid, ct = message_id.encode(), content_type.encode()
        parts.append(head(origin, timestamp_ms, len(mid), len(ct), len(body)))
        parts.append(mid)
        parts.append(ct)
        parts.append(body)
    return b"".join(parts)


def unpack(blob: bytes) -> Iterator[Packed]:
    """The messages of a blob made by :func:`pack`, in order."""
    view = memoryview(blob)
    at, end = 0, len(blob)
    head = _HEAD.unpack_from
    while at < end:
        origin, timestamp_ms, n_id, n_ct, n_body = head(blob, at)
        at += _HEAD_SIZE
        message_id = str(view[at:at + n_id], "utf-8")
        at += n_id
        content_type = str(view[at:at + n_ct], "utf-8")
        at += n_ct
        body = bytes(view[at:at + n_body])
        at += n_body
        yield origin, message_id, timestamp_ms, content_type, body
