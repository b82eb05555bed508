"""docs/d1.md's examples, run as written, so the manual stays true."""

from __future__ import annotations

import re
from pathlib import Path

DOC = (Path(__file__).resolve().parents[3] / "docs" / "d1.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC, re.S)


def block(lang: str, starts: str) -> str:
    return next(code for kind, code in BLOCKS if kind == lang and code.lstrip().startswith(starts))


def test_the_todo_example_runs_as_written(dev):
    s = dev({"wrangler.toml": block("toml", 'name = "todo"'), "todo.py": block("python", "# todo.py")})
    created = s.post("/", content="buy milk")
    assert created.status_code == 201 and created.json() == {"id": 1}
    assert s.get("/").json() == [{"id": 1, "title": "buy milk", "done": 0}]
    # the control-API example from the page
    answer = s.api("POST", "/d1/database/DB/query", json={"sql": "SELECT title FROM todos WHERE id = ?",
                                                          "params": [1]})
    assert answer["result"][0]["results"] == [{"title": "buy milk"}]


async def test_the_testing_example_runs_as_written(tmp_path, monkeypatch):
    (tmp_path / "wrangler.toml").write_text(block("toml", 'name = "todo"'))
    (tmp_path / "todo.py").write_text(block("python", "# todo.py"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block("python", "from edgelet.testing"), "docs/d1.md", "exec"), namespace)
    await namespace["test_todos"]()  # type: ignore[operator]
