"""Config files that are deep, big or JSONC (issue 13: D9, D10)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import EDGELET, write_app

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


def test_a_2_mb_wrangler_json_is_ready_in_under_3_seconds(tmp_path: Path) -> None:
    write_app(tmp_path, {"w.py": HELLO_PY})
    config = {"name": "x", "main": "w.py", "vars": {f"VAR_{i}": "v" * 100 for i in range(20_000)}}
    path = tmp_path / "wrangler.json"
    path.write_text(json.dumps(config, indent=1))
    assert path.stat().st_size > 2_200_000
    started = time.monotonic()
    proc = subprocess.Popen([*EDGELET, "dev", "--port", "0", "--in-memory"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        took = time.monotonic() - started
        assert re.search(r"Ready on http://127\.0\.0\.1:\d+", line), line
        assert took < 3.0, f"Ready after {took:.1f} s"
    finally:
        proc.kill()
        proc.wait(10)
