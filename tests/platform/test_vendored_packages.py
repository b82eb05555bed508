"""A Worker imports packages vendored in ``python_modules/`` (docs/dev.md, SPEC 3), and an
edit to a vendored file reloads the Workers that import it."""

from __future__ import annotations

import time
from typing import Any

APP = {
    "wrangler_like.toml": 'name = "vendored"\nmain = "src/w.py"\n',
    "python_modules/tinylib/__init__.py": "VERSION = '1.0'\n",
    "src/w.py": """
        import tinylib
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(tinylib.VERSION)
    """,
}


def test_python_modules_beside_the_config_are_importable_and_watched(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    assert s.get("/").text == "1.0"
    (s.cwd / "python_modules/tinylib/__init__.py").write_text("VERSION = '2.0'\n")
    deadline = time.monotonic() + 15
    while s.get("/").text != "2.0" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.get("/").text == "2.0", s.logs()
