"""Uploads and downloads of large R2 objects: a progress bar on a terminal, none piped."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from ptyrun import BAR, run_in_terminal
from r2_app import CONFIG

EDGELET = [sys.executable, "-m", "edgelet.cli"]
WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""
SIZE = 9 * 1024 * 1024  # above the 8 MiB from which transfers show a bar


def test_large_put_and_get_show_a_bar_on_a_terminal_and_none_piped(tmp_path: Path) -> None:
    (tmp_path / "wrangler.toml").write_text(textwrap.dedent(CONFIG))
    (tmp_path / "w.py").write_text(textwrap.dedent(WORKER))
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(SIZE))

    code, out = run_in_terminal([*EDGELET, "r2", "object", "put", "files/big.bin", "--file", str(src),
                                 "--port", "9"], tmp_path)
    assert code == 0 and f"Uploaded {SIZE} bytes" in out, out
    assert BAR in out and "Uploading files/big.bin" in out, out

    code, out = run_in_terminal([*EDGELET, "r2", "object", "get", "files/big.bin", "--file", "tty.bin",
                                 "--port", "9"], tmp_path)
    assert code == 0 and f"Downloaded {SIZE} bytes" in out, out
    assert BAR in out and "Downloading files/big.bin" in out, out
    assert (tmp_path / "tty.bin").read_bytes() == src.read_bytes()

    for args in (["put", "files/again.bin", "--file", str(src)], ["get", "files/big.bin", "--file", "piped.bin"]):
        piped = subprocess.run([*EDGELET, "r2", "object", *args, "--port", "9"], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
        assert piped.returncode == 0, piped.stderr
        assert BAR not in piped.stdout + piped.stderr and "\x1b[" not in piped.stderr, piped.stderr
    assert (tmp_path / "piped.bin").read_bytes() == src.read_bytes()


def test_a_small_object_draws_no_bar(tmp_path: Path) -> None:
    (tmp_path / "wrangler.toml").write_text(textwrap.dedent(CONFIG))
    (tmp_path / "w.py").write_text(textwrap.dedent(WORKER))
    (tmp_path / "small.txt").write_text("hello")
    code, out = run_in_terminal([*EDGELET, "r2", "object", "put", "files/small.txt", "--file", "small.txt",
                                 "--port", "9"], tmp_path)
    assert code == 0 and "Uploaded 5 bytes" in out, out
    code, out = run_in_terminal([*EDGELET, "r2", "object", "get", "files/small.txt", "--file", "back.txt",
                                 "--port", "9"], tmp_path)
    assert code == 0 and "Downloaded 5 bytes" in out, out
    assert BAR not in out
