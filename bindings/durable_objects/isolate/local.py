"""Calls from a Worker to its own Durable Object classes, delivered without the host.

Why: the host routes every event of a class to the isolate of the Worker whose script
defines it (``Plugin.call_object``), so when that Worker itself calls one of its objects,
the host only ever sends the call back where it came from. Going through it costs two
trips each way over the channel (isolate -> host -> isolate -> host -> isolate) and a task
per hop; delivering in place costs none, and every guarantee stays where it lives: the
one instance per id and its input gate are this isolate's ``LiveObjects``, storage is the
same database, and the object's log lines go out on this isolate's channel as before.

The host still has to know the objects exist (``edgelet durable-objects objects``, the
explorer, alarms): :class:`IndexTracker` tells it, as ``call_object`` would have.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.runtime.isolate_api import IsolateServices

log = logging.getLogger("edgelet.durable_objects")

#: seconds between two batches of "last used" times sent to the host (its index writes
#: them behind by as much: see index.FLUSH_DELAY)
FLUSH_DELAY = 1.0


class IndexTracker:
    """What the host's object index must hear of the calls this isolate delivered itself.

    The first call to an id waits until the host has written the id's row (a listing shows
    the object even after a kill -9, as when the host routed the call); after that, uses
    are sent in one batch per second without waiting, like the index writes them.
    """

    def __init__(self, runtime: IsolateServices) -> None:
        self.runtime = runtime
        #: (namespace, id) pairs the host has a row for
        self.known: set[tuple[str, str]] = set()
        self._used: dict[tuple[str, str], str | None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def announce(self, ns: str, id_hex: str, name: str | None) -> None:
        """Have the host record a new object before its first event runs."""
        await self.runtime.call_host("durable_objects", "touch", [[ns, id_hex, name]])
        self.known.add((ns, id_hex))

    def used(self, ns: str, id_hex: str, name: str | None) -> None:
        """Note a use of a known object; sent with the next batch."""
        self._used[(ns, id_hex)] = name
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Send the batched uses now (fire and forget: they only move "last used")."""
        self._timer = None
        if not self._used:
            return
        batch = [[ns, id_hex, name] for (ns, id_hex), name in self._used.items()]
        self._used.clear()
        task = asyncio.ensure_future(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[list[Any]]) -> None:
        try:
            await self.runtime.call_host("durable_objects", "touch", batch)
        except Exception as exc:  # the host is going away; "last used" is informative only
            log.debug("could not send %d Durable Object uses to the host: %s", len(batch), exc)
