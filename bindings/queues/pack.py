"""Many messages in one SQLite value: the ``messages`` column of a ``queue_batches`` row.

Why: storing a ``sendBatch`` of 100 as one row (not 100) is what makes sending, taking
and settling cost one row write per batch instead of one per message; the per-message
fields travel together in this value. Why msgpack: it is what the host <-> isolate channel
speaks, so a stored value goes to the consumer's isolate as it is (the host never decodes
a batch it delivers whole) and is decoded there by msgpack's C code; it is data only.

The value is a msgpack array of ``[origin, id, timestamp_ms, content_type, body]`` arrays,
in send order (``origin`` is the message's place in the queue's send order).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgpack

#: one packed message: ``[origin, id, timestamp_ms, content_type, body]``
Packed = list[Any]


def pack(messages: Iterable[Packed | tuple[Any, ...]]) -> bytes:
    """The stored value for ``messages``, in the order given."""
    return msgpack.packb(messages if isinstance(messages, list) else list(messages), use_bin_type=True)


def unpack(blob: bytes) -> list[Packed]:
    """The messages of a value made by :func:`pack`, in order."""
    return msgpack.unpackb(blob, raw=False)
