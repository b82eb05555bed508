"""Config files that are deep, big or JSONC (issue 13: D9, D10)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import EDGELET, write_app
from procstats import tree_cpu_seconds

from edgelet.config import ConfigError, load_config

HELLO_PY = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("ok")
"""


def _nested(depth: int) -> dict:
    root: dict = {}
    node = root
    for _ in range(depth - 1):
        node["a"] = {}
        node = node["a"]
    return root


def test_vars_nested_70_deep_in_json_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text("")
    path = tmp_path / "wrangler.json"
    path.write_text(json.dumps({"name": "x", "main": "w.py", "vars": {"DEEP": _nested(70)}}))
    with pytest.raises(ConfigError) as info:
        load_config([path])
    assert info.value.file == path and "nested" in str(info.value)
    assert (info.value.key or "").startswith("vars.DEEP.a.a")


def test_vars_nested_1000_deep_in_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text("")
    path = tmp_path / "wrangler_like.toml"
    path.write_text('name = "x"\nmain = "w.py"\n[vars]\nDEEP = ' + "{a = " * 1000 + "1" + "}" * 1000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_config([path])
    assert info.value.file == path and "nested" in str(info.value)


@pytest.mark.parametrize("name", ["wrangler.json", "wrangler.jsonc"])
def test_json_nested_beyond_the_parser_is_a_config_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "w.py").write_text("")
    path = tmp_path / name
    path.write_text('{"name": "x", "main": "w.py", "vars": {"DEEP": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    with pytest.raises(ConfigError) as info:
        load_config([path])
    assert info.value.file == path and "nested" in str(info.value)


def test_deep_config_from_the_command_line_names_the_file_without_a_traceback(tmp_path: Path) -> None:
    write_app(tmp_path, {"w.py": HELLO_PY})
    (tmp_path / "wrangler.json").write_text(json.dumps({"name": "x", "main": "w.py", "vars": {"D": _nested(70)}}))
    result = subprocess.run([*EDGELET, "dev", "--port", "0", "--in-memory"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "wrangler.json" in result.stderr and "nested" in result.stderr
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr


def test_jsonc_comments_and_trailing_commas(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text("")
    path = tmp_path / "wrangler.jsonc"
    path.write_text('{\n  // the name\n  "name": "x", /* block\n comment */ "main": "w.py",\n'
                    '  "vars": {"URL": "http://a//b", "NOTE": "/* not a comment */", "L": [1, 2, /* c */],},\n}\n')
    worker = load_config([path]).workers[0]
    assert worker.vars == {"URL": "http://a//b", "NOTE": "/* not a comment */", "L": [1, 2]}


def test_json5_syntax_still_loads(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text("")
    path = tmp_path / "wrangler.json"
    path.write_text("{name: 'x', main: 'w.py', vars: {HEX: 0x10}}")
    assert load_config([path]).workers[0].vars == {"HEX": 16}


def test_jsonc_error_keeps_line_and_column_after_a_block_comment(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text("")
    path = tmp_path / "wrangler.jsonc"
    path.write_text('{\n  /* one\n     two */\n  "name": "x",\n  "main": "w.py" "vars": {}\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config([path])
    assert (info.value.file, info.value.line, info.value.column) == (path, 5, 18)
    assert "invalid JSON" in str(info.value)


def _ready(folder: Path) -> tuple[float, float]:
    """Start `edgelet dev` in ``folder``; wall seconds to its "Ready on" line and the CPU
    seconds its process tree had used by then."""
    started = time.monotonic()
    proc = subprocess.Popen([*EDGELET, "dev", "--port", "0", "--in-memory"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        took = time.monotonic() - started
        cpu = tree_cpu_seconds(proc.pid)
        assert re.search(r"Ready on http://127\.0\.0\.1:\d+", line), line
        return took, cpu
    finally:
        proc.kill()
        proc.wait(10)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the fork server and isolate
        except ProcessLookupError:
            pass


def test_a_2_mb_wrangler_json_costs_dev_start_up_well_under_a_second(tmp_path: Path) -> None:
    """A 2 MB wrangler.json must not make `dev` noticeably slower to start than a tiny one
    (json5, the fallback parser, took many seconds for it). Measured as CPU seconds of the
    process tree against a tiny config started in the same test (~0.1 s more on a quiet
    machine; the machine's load barely moves it), plus a generous wall bound relative to
    the same baseline for waits CPU time cannot see."""
    small, big = write_app(tmp_path / "small", {"w.py": HELLO_PY}), write_app(tmp_path / "big", {"w.py": HELLO_PY})
    (small / "wrangler.json").write_text(json.dumps({"name": "x", "main": "w.py", "vars": {"A": "v"}}))
    config = {"name": "x", "main": "w.py", "vars": {f"VAR_{i}": "v" * 100 for i in range(20_000)}}
    path = big / "wrangler.json"
    path.write_text(json.dumps(config, indent=1))
    assert path.stat().st_size > 2_200_000
    base_wall, base_cpu = _ready(small)
    wall, cpu = _ready(big)
    assert cpu - base_cpu < 1.0, f"{cpu:.2f} s of CPU to Ready, {base_cpu:.2f} s for a tiny config"
    assert wall < 3 * base_wall + 2.0, f"Ready after {wall:.1f} s, {base_wall:.1f} s for a tiny config"
