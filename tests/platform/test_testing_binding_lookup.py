"""``p.kv("NAME")`` (any ``p.<accessor>``) for a binding no Worker has lists the bindings
of that kind there are, so a typo or a missing ``worker=`` is obvious (it said only "check
the config")."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgelet.testing import Platform

SCRIPT = """
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("ok")
"""

CONFIG = """
[[workers]]
name = "a"
main = "w.py"
kv_namespaces = [{ binding = "CACHE" }, { binding = "NOTES" }]

[[workers]]
name = "b"
main = "w.py"
"""


async def test_an_unknown_binding_lists_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text(SCRIPT)
    (tmp_path / "wrangler_like.toml").write_text(CONFIG)
    async with Platform(str(tmp_path / "wrangler_like.toml"), clock="virtual") as p:
        with pytest.raises(LookupError) as caught:
            p.kv("NOTE")
        assert str(caught.value) == ("no kv binding named 'NOTE' in any Worker (kv bindings: a.CACHE, "
                                     "a.NOTES); check the name or pass worker=")
        with pytest.raises(LookupError) as caught:
            p.kv("NOTES", worker="b")
        assert "in Worker 'b' (no Worker there has a kv binding)" in str(caught.value)
        await p.kv("NOTES").put("k", "v")
        assert await p.kv("NOTES", worker="a").get("k") == "v"
