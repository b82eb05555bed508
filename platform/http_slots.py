"""The table host and isolate share for the HTTP connections an isolate serves.

Why shared memory: the host must know, when an isolate dies, which of its connections had a
request in flight (they get the 503 naming the crash) and which were idle (closed), and
whether a request has run past ``request_timeout_ms`` in an isolate whose loop is stuck;
asking over a socket per request would cost what serving in the isolate saves. So the
isolate writes a slot per connection (a few bytes, no system call) and the host reads it
only when it needs to: when the isolate has died, is being reloaded, or is late.

Layout (a file in /dev/shm the host creates and names to the isolate, which maps it too, then
unlinked; edgelet.http_handoff): a header with the
isolate's heartbeat (``time.monotonic()``, written every HEARTBEAT_S by its loop), then
SLOTS slots of (state, since): the state of the connection and when it entered it.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

#: the connection's slot is unused
FREE = 0
#: between requests (kept alive)
IDLE = 1
#: a request has begun arriving and no response byte has been written
BUSY = 2
#: the response has started
RESPONDING = 3
#: the isolate stopped reading it for a reload: the host gives it to the next isolate
RELEASED = 4
#: the host answered it (the isolate's loop was stuck past the request timeout)
TAKEN = 5

SLOTS = 4096
HEARTBEAT_S = 0.1
_HEADER = struct.Struct("<d")
_SLOT = struct.Struct("<Id")
_BASE = 64
SIZE = _BASE + SLOTS * 16


class Slots:
    """One isolate's slot table, mapped from ``fd`` (both sides)."""

    __slots__ = ("path", "_map")

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)

    @classmethod
    def create(cls) -> Slots:
        """A new zeroed table (the host's side); ``unlink()`` once the isolate has mapped it."""
        import tempfile
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="edgelet-http-", dir=folder)
        try:
            os.ftruncate(fd, SIZE)
        finally:
            os.close(fd)
        return cls(path)

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def set(self, slot: int, state: int, since: float = 0.0) -> None:
        _SLOT.pack_into(self._map, _BASE + slot * 16, state, since)

    def get(self, slot: int) -> tuple[int, float]:
        return _SLOT.unpack_from(self._map, _BASE + slot * 16)

    def state(self, slot: int) -> int:
        return _SLOT.unpack_from(self._map, _BASE + slot * 16)[0]

    def beat(self) -> None:
        _HEADER.pack_into(self._map, 0, time.monotonic())

    @property
    def heartbeat(self) -> float:
        return _HEADER.unpack_from(self._map, 0)[0]

    def close(self) -> None:
        try:
            self._map.close()
        except BufferError:
            pass
