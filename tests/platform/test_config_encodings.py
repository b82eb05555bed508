"""Config files saved by Windows tools. A UTF-8 byte-order mark (Notepad, Visual Studio) is
dropped, as wrangler drops it; before, wrangler.toml failed with "invalid TOML: Invalid
statement" at 1:1 and `.dev.vars` with '"\\ufeffSECRET" is not a valid variable name'. A
UTF-16 file (PowerShell's `>`) is named as UTF-16, not "invalid start byte"."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import EDGELET

from edgelet.config import ConfigError, load_config

WORKER = """\
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(self.env.SECRET + " " + self.env.GREETING)
"""

TOML = 'name = "app"\nmain = "w.py"\n[vars]\nGREETING = "caf\u00e9"\n'


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "w.py").write_text(WORKER)
    return tmp_path


def test_a_utf8_bom_is_dropped_from_the_config_and_dev_vars(app: Path, dev) -> None:  # type: ignore[no-untyped-def]
    (app / "wrangler.toml").write_bytes(b"\xef\xbb\xbf" + TOML.encode())
    (app / ".dev.vars").write_bytes(b"\xef\xbb\xbfSECRET=hunter2\n")
    config = load_config([app / "wrangler.toml"])
    assert config.worker("app").secrets == {"SECRET": "hunter2"}
    s = dev(None, "--in-memory", cwd=app)
    assert s.get("/").text == "hunter2 caf\u00e9"


def test_a_utf8_bom_in_wrangler_json(app: Path) -> None:
    (app / "wrangler.jsonc").write_bytes(b"\xef\xbb\xbf" + b'{"name": "app", "main": "w.py", // c\n}')
    assert load_config([app / "wrangler.jsonc"]).worker("app").main.name == "w.py"


@pytest.mark.parametrize("encoding, name", [("utf-16-le", "UTF-16 LE"), ("utf-16-be", "UTF-16 BE")])
def test_utf16_is_named(app: Path, encoding: str, name: str) -> None:
    bom = b"\xff\xfe" if encoding.endswith("le") else b"\xfe\xff"
    (app / "wrangler.toml").write_bytes(bom + TOML.encode(encoding))
    with pytest.raises(ConfigError) as info:
        load_config([app / "wrangler.toml"])
    assert f"the file is encoded as {name}" in str(info.value)
    assert "save the file as UTF-8 (without a BOM)" in str(info.value)
    (app / "wrangler.toml").write_text(TOML)
    (app / ".dev.vars").write_bytes(bom + "SECRET=x\n".encode(encoding))
    with pytest.raises(ConfigError) as info:
        load_config([app / "wrangler.toml"])
    assert ".dev.vars" in str(info.value) and f"encoded as {name}" in str(info.value)
    assert "KEY=VALUE" in str(info.value)


def test_latin1_names_the_byte_and_line(app: Path) -> None:
    (app / "wrangler.toml").write_bytes(TOML.encode("latin-1"))
    result = subprocess.run([*EDGELET, "dev", "--port", "0", "--in-memory"], cwd=app, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1 and "Ready on" not in result.stdout
    assert "wrangler.toml: not UTF-8 text (byte 0xe9 on line 4 cannot be decoded)" in result.stderr, result.stderr
    assert "Fix: save the file as UTF-8" in result.stderr
