"""``r2_buckets`` in the config: parsed, shared by bucket name, bad values named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgelet.config import ConfigError, load_config_dict


def worker(**extra: object) -> dict[str, object]:
    return {"name": "api", "main": "w.py", **extra}


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "w.py").write_text("")
    return tmp_path


def test_buckets_parse_and_warn_only_on_unknown_fields(app: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edgelet.config")
    config = load_config_dict(worker(r2_buckets=[
        {"binding": "FILES", "bucket_name": "files", "preview_bucket_name": "files-dev", "jurisdiction": "eu"},
        {"binding": "LOGS", "colour": "red"}]), base_dir=app)
    files, logs = config.primary.decls("r2")
    assert (files.binding, files.bucket_name, files.preview_bucket_name, files.jurisdiction) == \
        ("FILES", "files", "files-dev", "eu")
    assert (logs.binding, logs.bucket_name) == ("LOGS", "LOGS")  # no bucket_name: the binding's name
    messages = [r.getMessage() for r in caplog.records]
    assert any("'colour'" in m and "r2_buckets[1]" in m for m in messages)
    assert not any("'r2_buckets'" in m for m in messages)


def test_bad_bucket_values_are_named(app: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config_dict(worker(r2_buckets=[{"binding": "B", "bucket_name": 7}]), base_dir=app)
    assert "r2_buckets[0].bucket_name" in str(err.value) and "string" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config_dict(worker(r2_buckets=[{"bucket_name": "x"}]), base_dir=app)
    assert "binding" in str(err.value)
