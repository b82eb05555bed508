"""Browsing stored messages (the explorer's view): keyset pages over a million-message
backlog, moving a dead letter back, purging."""

from __future__ import annotations

import time
from typing import Any

import pytest

from edgelet.bindings.queues.storage import DEAD, INFLIGHT, PENDING, QueueStore
from edgelet.state import open_database


@pytest.mark.slow
def test_a_page_deep_in_a_million_messages_costs_what_the_first_does() -> None:
    store = QueueStore(open_database(None))
    batch = 100_000
    for start in range(0, 1_000_000, batch):
        store.insert("big", [(f"m{i:07d}", 0, "json", b"{}", float(i // 1000)) for i in range(start, start + batch)])
    store.insert("other", [("x", 0, "json", b"{}", 0.0)])
    pages, cursor, t0 = 0, None, time.perf_counter()
    first = store.page("big", PENDING, 0.0, limit=50)
    first_s = time.perf_counter() - t0
    # jump to the middle by cursor (visible_at, seq, origin) and walk on: each page is an
    # index probe, not a scan
    cursor = (float(500_000 // 1000), 0, 0)
    t0 = time.perf_counter()
    while pages < 20:
        rows = store.page("big", PENDING, 0.0, after=cursor, limit=50)
        seq, origin = (int(x) for x in rows[-1][0].split(":"))
        cursor = (rows[-1][6], seq, origin)
        pages += 1
    per_page = (time.perf_counter() - t0) / pages
    assert [r[1] for r in first[:2]] == ["m0000000", "m0000001"]
    assert rows[-1][1] == f"m{500_000 + 20 * 50 - 1:07d}"  # the first due at 500 s is m0500000
    assert per_page < max(0.01, first_s * 5), f"a deep page took {per_page * 1000:.1f} ms"
    assert store.count("big", PENDING) == 1_000_000


def test_move_back_and_purge_touch_only_what_they_name() -> None:
    store = QueueStore(open_database(None))
    for message in [("a", 1, "json", b"1", 0.0), ("b", 2, "json", b"2", 0.0), ("c", 3, "json", b"3", 0.0)]:
        store.insert("q", [message])  # one stored row each, so each can be in its own state
    sa, _sb, sc = (r[0] for r in store.conn.execute("SELECT seq FROM queue_batches ORDER BY seq"))
    store.conn.execute(f"UPDATE queue_batches SET state = {DEAD}, attempts = 3 WHERE seq = ?", (sa,))
    store.conn.execute(f"UPDATE queue_batches SET state = {INFLIGHT} WHERE seq = ?", (sc,))
    assert store.move("q", "a", "q", 10.0)
    assert [(r[1], r[5]) for r in store.page("q", PENDING, 10.0)] == [("b", 0), ("a", 0)]
    assert not store.move("q", "c", "q", 10.0)  # in flight: its delivery decides
    assert not store.move("q", "zzz", "q", 10.0)
    assert store.purge("q") == 2
    assert [r[1] for r in store.page("q", INFLIGHT, 10.0)] == ["c"]


def test_the_api_pages_moves_and_purges(dev: Any) -> None:
    s = dev({"wrangler_like.toml": """
        [[workers]]
        name = "w"
        main = "w.py"
        compatibility_date = "2026-11-01"
        queues.producers = [{ binding = "Q", queue = "jobs" }]
        # the three messages below fill one batch at once; the one moved back later waits
        # (30 s) rather than bouncing into the dead-letter queue again while the test looks
        queues.consumers = [{ queue = "jobs", max_retries = 0, max_batch_size = 3, max_batch_timeout = 30, dead_letter_queue = "jobs-dlq" }]
    """, "w.py": """
        from workers import Response, WorkerEntrypoint

        seen = set()

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")

            async def queue(self, batch):
                # down for a message's first delivery: dead-lettered at once (max_retries 0);
                # one moved back is acked, so it cannot race back into the DLQ under the test
                if all(m.id in seen for m in batch.messages):
                    batch.ackAll()
                    return
                seen.update(m.id for m in batch.messages)
                raise RuntimeError("down")
    """})
    ids = s.api("POST", "/queues/jobs/messages/batch",
                json={"messages": [{"body": {"n": i}} for i in range(3)]})["result"]["ids"]
    deadline = time.monotonic() + 20
    while s.api("GET", "/queues/jobs-dlq")["result"]["backlog"] < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    page = s.api("GET", "/queues/jobs-dlq/messages?state=waiting&limit=2")
    assert [m["id"] for m in page["result"]] == ids[:2] and page["result"][0]["body"] == {"n": 0}
    assert page["result_info"]["total_count"] == 3
    rest = s.api("GET", f"/queues/jobs-dlq/messages?state=waiting&limit=2&cursor={page['result_info']['cursor']}")
    assert [m["id"] for m in rest["result"]] == ids[2:] and rest["result_info"]["cursor"] == ""
    bad = s.api("GET", "/queues/jobs-dlq/messages?state=lost")
    assert bad["success"] is False and "state 'lost' is not one of" in bad["errors"][0]["message"]
    bad = s.api("GET", "/queues/jobs-dlq/messages?cursor=garbage")
    assert "cursor 'garbage' is not one this API gave out" in bad["errors"][0]["message"]
    moved = s.api("POST", f"/queues/jobs-dlq/messages/{ids[0]}/move", json={})
    assert moved["result"] == {"queue": "jobs", "id": ids[0]}
    again = s.api("POST", f"/queues/jobs-dlq/messages/{ids[0]}/move", json={})
    assert again["success"] is False and "holds no waiting or dead message" in again["errors"][0]["message"]
    purged = s.api("POST", "/queues/jobs-dlq/purge")
    assert purged["success"] is True and purged["result"]["purged"] >= 2
