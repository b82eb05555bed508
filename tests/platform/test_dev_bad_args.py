"""`edgelet dev` with arguments it cannot use: the message names the argument and its fix.
Before: `--ip 999.1.1.1` or an address of another machine asked whether another `edgelet dev`
was running and suggested another --port; `--max-body-size -1` started a server that refused
every request body ("larger than the limit of -1 bytes")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import EDGELET, write_app

HELLO = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("hi")
"""


def run_dev(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    write_app(folder, {"wrangler_like.toml": 'name = "x"\nmain = "w.py"\n', "w.py": HELLO})
    return subprocess.run([*EDGELET, "dev", "--port", "0", "--in-memory", *args], cwd=folder,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("ip", ["999.1.1.1", "not-an-ip"])
def test_an_ip_that_is_no_address(tmp_path: Path, ip: str) -> None:
    r = run_dev(tmp_path, "--ip", ip)
    assert r.returncode == 1 and "Ready on" not in r.stdout
    assert f"--ip {ip!r} is not an IP address" in r.stderr, r.stderr
    assert "another `edgelet dev`" not in r.stderr


def test_an_ip_of_another_machine(tmp_path: Path) -> None:
    r = run_dev(tmp_path, "--ip", "192.0.2.1")  # TEST-NET-1: never this machine's
    assert r.returncode == 1
    assert "192.0.2.1 is not an address of this machine" in r.stderr, r.stderr
    assert "0.0.0.0 (every interface)" in r.stderr and "another `edgelet dev`" not in r.stderr


def test_a_negative_max_body_size(tmp_path: Path) -> None:
    r = run_dev(tmp_path, "--max-body-size", "-1")
    assert r.returncode == 2 and "Ready on" not in r.stdout
    assert "Invalid value for '--max-body-size': -1 is not in the range x>=0" in r.stderr, r.stderr
