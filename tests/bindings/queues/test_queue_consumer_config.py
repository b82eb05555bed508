"""Consumer settings Cloudflare has and edgelet does not emulate are refused at load, naming
the file and key: ``type = "http_pull"`` used to warn as an unknown key and then make the
Worker a push consumer, which it is not on Cloudflare. Dead-letter cycles between two
queues load, as on Cloudflare (Miniflare refuses only a queue that is its own DLQ)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_app

from edgelet.config import ConfigError, load_config

CONFIG = """
[[workers]]
name = "back"
main = "back.py"
queues.producers = [{ binding = "JOBS", queue = "jobs" }]

[[workers.queues.consumers]]
queue = "jobs"
%s
"""


def load(tmp_path: Path, extra: str) -> object:
    write_app(tmp_path, {"wrangler_like.toml": CONFIG % extra, "back.py": "x = 1\n"})
    return load_config([tmp_path / "wrangler_like.toml"])


@pytest.mark.parametrize("kind", ["http_pull", "pull"])
def test_a_consumer_type_edgelet_does_not_emulate_is_refused(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f'type = "{kind}"\nvisibility_timeout_ms = 5000')
    text = str(err.value)
    assert "wrangler_like.toml" in text and "queues.consumers" in text and ".type" in text, text
    assert "jobs" in text, text
    if kind == "http_pull":
        assert "HTTP pull consumers" in text and "not emulated" in text, text
    else:
        assert 'type = "worker"' in text, text


def test_type_worker_is_a_push_consumer(tmp_path: Path) -> None:
    load(tmp_path, 'type = "worker"')


def test_a_dead_letter_cycle_between_two_queues_loads_as_on_cloudflare(tmp_path: Path) -> None:
    write_app(tmp_path, {"wrangler_like.toml": """
[[workers]]
name = "back"
main = "back.py"
queues.producers = [{ binding = "JOBS", queue = "jobs" }]
queues.consumers = [
  { queue = "jobs", dead_letter_queue = "jobs-dlq" },
  { queue = "jobs-dlq", dead_letter_queue = "jobs" },
]
""", "back.py": "x = 1\n"})
    load_config([tmp_path / "wrangler_like.toml"])


def test_a_queue_that_is_its_own_dead_letter_queue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, 'dead_letter_queue = "jobs"')
    assert "cannot be its own dead-letter queue" in str(err.value)
