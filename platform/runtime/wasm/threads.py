"""The threads a Wasm Worker's isolate runs KV-calling modules on.

A module that imports ``edgelet.kv_*`` cannot run on the isolate's event-loop thread: its
KV calls wait for that loop (they travel to the host over the channel). So its requests
run here, on threads of the isolate, and the loop only waits for a future.

Why our own threads rather than ``loop.run_in_executor``: the executor's future chaining
and ``wait_for``'s task cost ~20 µs a request, half of a hello-world's whole Wasm run.

Why one thread until proven slow: the Python glue of a request holds the GIL, so several
threads running short requests only hand the GIL around (measured: 4 threads serve a
hello-world at half the rate of 1). Another thread starts only when every thread has been
on its current request for ``GROW_AFTER`` while others wait: a long computation, or a KV
call in flight, never holds up the queue for longer than that.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

#: a thread busy this long (seconds) with others waiting: start another
GROW_AFTER = 0.002


class ThreadPool:
    """Runs ``serve(*job)`` for each submitted job on up to ``max_threads`` threads."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop, max_threads: int,
                 serve: Callable[..., Any]) -> None:
        self.name = name
        self.loop = loop
        self.max_threads = max_threads
        self._serve = serve
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        #: per thread: when it took its current job (0.0 while idle)
        self._busy_since: list[float] = []
        self._idle = 0
        self._grow_pending = False

    async def run(self, *job: Any) -> Any:
        """``serve(*job)`` on a pool thread; its result, or the exception it raised."""
        fut = self.loop.create_future()
        self._jobs.put((job, fut))
        if self._idle == 0:
            if not self._workers:
                self._spawn()
            elif not self._grow_pending and len(self._workers) < self.max_threads:
                self._grow_pending = True
                self.loop.call_later(GROW_AFTER, self._maybe_grow)
        return await fut

    def _spawn(self) -> None:
        index = len(self._workers)
        self._busy_since.append(0.0)
        thread = threading.Thread(target=self._work, args=(index,),
                                  name=f"wasm-{self.name}-{index}", daemon=True)
        self._workers.append(thread)
        thread.start()

    def _maybe_grow(self) -> None:
        self._grow_pending = False
        if self._jobs.empty() or self._idle or len(self._workers) >= self.max_threads:
            return
        now = time.perf_counter()
        if all(since and now - since >= GROW_AFTER for since in self._busy_since):
            self._spawn()
        self._grow_pending = True  # look again while a backlog remains
        self.loop.call_later(GROW_AFTER, self._maybe_grow)

    def _work(self, index: int) -> None:
        jobs, loop, busy = self._jobs, self.loop, self._busy_since
        while True:
            self._idle += 1
            item = jobs.get()
            self._idle -= 1
            if item is None:
                return
            job, fut = item
            busy[index] = time.perf_counter()
            try:
                result, error = self._serve(*job), None
            except BaseException as exc:  # handed to the awaiting coroutine
                result, error = None, exc
            busy[index] = 0.0
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():  # cancelled meanwhile
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
