"""kill -9 of the platform in the middle of a large D1 batch: after restart, all or nothing."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from crash import restart

CONFIG = """
    name = "crash"
    main = "w.py"
    d1_databases = [{ binding = "DB", database_name = "crash", database_id = "crash-db" }]
"""

WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            db = self.env.DB
            path = request.url.rsplit("/", 1)[1]
            if path == "setup":
                await db.exec("CREATE TABLE IF NOT EXISTS big (n INTEGER PRIMARY KEY, pad BLOB)")
                await db.prepare("INSERT OR IGNORE INTO big (n, pad) VALUES (-1, 'before')").run()
                return Response("ready")
            if path == "batch":
                stmt = db.prepare("INSERT INTO big (n, pad) VALUES (?, randomblob(400))")
                results = await db.batch([stmt.bind(i) for i in range(60_000)])
                return Response(str(len(results)))
            return Response(str(await db.prepare("SELECT count(*) AS n FROM big").first("n")))
"""


@pytest.mark.slow
def test_kill_during_a_batch_leaves_all_or_nothing(dev, tmp_path):
    s = dev({"wrangler.toml": CONFIG, "w.py": WORKER})
    assert s.get("/setup").text == "ready"
    wal = tmp_path / ".edgelet" / "state" / "d1" / "crash-db.sqlite3-wal"
    start_size = wal.stat().st_size if wal.exists() else 0
    answer: dict[str, object] = {}

    def send() -> None:
        try:
            answer["status"] = s.get("/batch", timeout=120).status_code
        except httpx.HTTPError as exc:
            answer["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    # SQLite spills the uncommitted batch into the WAL as its page cache fills: once the
    # WAL has grown by several MB, the batch is running and not yet committed.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size > start_size + 6_000_000:
            break
        time.sleep(0.005)
    else:
        pytest.fail(f"the batch never started writing; logs:\n{s.logs()}")
    s.kill()
    sender.join(30)
    assert "status" not in answer, "the batch answered before the kill; the test did not hit mid-batch"

    restarted = restart(dev, s)
    assert restarted.get("/count").text == "1"   # only the row from before: the batch left nothing
    # and the database is healthy: the same batch now runs to the end
    assert restarted.get("/batch", timeout=120).text == "60000"
    assert restarted.get("/count").text == "60001"
