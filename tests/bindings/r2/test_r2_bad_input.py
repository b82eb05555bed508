"""R2 given input Cloudflare refuses, or a place it cannot write: refused with a message that
says what and how to fix it, and nothing stored or half-written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from conftest import WORKER_HELPERS
from r2_app import CONFIG

WORKER = r'''
from workers import Response, WorkerEntrypoint
from worker_helpers import error_of

MiB = 1024 * 1024


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        b = self.env.B
        # parts 1 and 2 of different sizes, then a small last part
        up = await b.createMultipartUpload("uneven")
        p1 = await up.uploadPart(1, b"a" * (5 * MiB))
        p2 = await up.uploadPart(2, b"b" * (6 * MiB))
        p3 = await up.uploadPart(3, b"tail")
        uneven = await error_of(up.complete([p1, p2, p3]))
        uneven_head = await b.head("uneven")
        # the last part larger than the others
        up2 = await b.createMultipartUpload("bigtail")
        q1 = await up2.uploadPart(1, b"a" * (5 * MiB))
        q2 = await up2.uploadPart(2, b"b" * (5 * MiB + 1))
        big_tail = await error_of(up2.complete([q1, q2]))
        # the upload stays open: a part of the right size, and it completes
        p2 = await up.uploadPart(2, b"b" * (5 * MiB))
        done = await up.complete([p1, p2, p3])
        return Response.json({"uneven": uneven, "uneven_head": uneven_head is None,
                              "big_tail": big_tail, "big_tail_head": await b.head("bigtail") is None,
                              "done": done.size})
'''


def test_multipart_parts_of_different_sizes_are_refused_as_on_r2(dev: Any) -> None:
    """R2: every part but the last the same size, the last no larger (r2/objects/multipart-objects)."""
    s = dev({**WORKER_HELPERS, "wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")
    r = s.get("/", timeout=120)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["uneven"].startswith("ValueError: env.B.complete(): There was a problem with the multipart "
                                    "upload. (10048): part 2 is 6291456 bytes but part 1 is 5242880"), out
    assert "upload part 2 again with 5242880 bytes" in out["uneven"]
    assert "(10048)" in out["big_tail"] and "the last part (2) is 5242881 bytes" in out["big_tail"], out
    assert out["uneven_head"] and out["big_tail_head"]  # nothing stored
    assert out["done"] == 10 * 1024 * 1024 + 4


def cli(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """``edgelet r2 ...`` on the state folder (nothing answers on port 9)."""
    return subprocess.run([sys.executable, "-m", "edgelet.cli", "r2", *args, "--port", "9"], cwd=cwd,
                          input=stdin, capture_output=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})


def test_object_get_to_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "wrangler_like.toml").write_text(textwrap.dedent(CONFIG))
    (tmp_path / "w.py").write_text("# not run\n")
    assert cli(tmp_path, "object", "put", "files/docs/a.txt", "--pipe", stdin=b"hello").returncode == 0
    r = cli(tmp_path, "object", "get", "files/docs/a.txt", "--file", "missing/a.txt")
    assert r.returncode == 1 and b"Traceback" not in r.stderr, r.stderr
    assert b"cannot write missing/a.txt: No such file or directory" in r.stderr
    assert b"nothing was downloaded" in r.stderr
    assert not (tmp_path / "missing").exists()
    r = cli(tmp_path, "object", "get", "files/docs/")
    assert r.returncode == 2 and b"ends with '/', so it names no file" in r.stderr, r.stderr
    r = cli(tmp_path, "object", "get", "files/docs/a.txt", "--file", "a.txt")
    assert r.returncode == 0 and (tmp_path / "a.txt").read_bytes() == b"hello"
