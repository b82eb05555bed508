"""``p.d1("DB")`` in edgelet.testing: the same async API as env.DB, from the test."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgelet.bindings.d1.errors import D1Error
from edgelet.testing import Platform

FILES = {
    "wrangler.toml": """
        name = "todo"
        main = "w.py"
        d1_databases = [{ binding = "DB", database_name = "todo", database_id = "todo-id" }]
    """,
    "w.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.method == "POST":
                    await self.env.DB.prepare("INSERT INTO todos (title) VALUES (?)").bind(await request.text()).run()
                    return Response("added", status=201)
                rows = await self.env.DB.prepare("SELECT title FROM todos ORDER BY id").all()
                return Response(",".join(r.title for r in rows.results))
    """,
}


def app(tmp_path: Path) -> Path:
    for rel, text in FILES.items():
        (tmp_path / rel).write_text(textwrap.dedent(text).lstrip("\n"))
    return tmp_path / "wrangler.toml"


async def test_handle_seeds_and_inspects_what_the_worker_sees(tmp_path):
    async with Platform(app(tmp_path)) as p:
        db = p.d1("DB")
        await db.exec("CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL)")
        results = await db.batch([db.prepare("INSERT INTO todos (title) VALUES (?)").bind(t) for t in ("a", "b")])
        assert [r.meta.last_row_id for r in results] == [1, 2]
        assert await (await p.fetch("/")).text() == "a,b"
        assert (await p.fetch("/", method="POST", body="c")).status == 201
        row = await db.prepare("SELECT * FROM todos WHERE title = ?").bind("c").first()
        assert row == {"id": 3, "title": "c"} and row.title == "c"
        assert await db.prepare("SELECT count(*) FROM todos").raw() == [[3]]
        with pytest.raises(D1Error, match="^D1_ERROR: no such column: nope"):
            await db.prepare("SELECT nope FROM todos").all()
        with pytest.raises(TypeError, match="parameter 1"):
            db.prepare("SELECT ?").bind({"a": 1})
        assert (await db.dump()).startswith(b"SQLite format 3\x00")
        session = db.with_session()
        await session.prepare("SELECT 1").run()
        assert session.get_bookmark()


async def test_unknown_binding_is_a_lookup_error(tmp_path):
    async with Platform(app(tmp_path)) as p:
        with pytest.raises(LookupError, match="NOPE"):
            p.d1("NOPE")
