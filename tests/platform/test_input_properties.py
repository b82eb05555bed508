"""Property-based tests of the checks that take user input (issue 13, "keep them fixed").

Whatever the input, each gives a result or its documented error (ConfigError for config
files, ValueError/TypeError for the binding rules), never another exception; what they
accept obeys the documented rule.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgelet.bindings.kv import limits as kv
from edgelet.bindings.queues import codec as queues
from edgelet.bindings.workflows import rules
from edgelet.clock import parse_duration
from edgelet.config import ConfigError, load_config
from edgelet.jsonc import JsoncError, loads, strip_jsonc

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- values -------------------------------------------------------------------------------
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


# -- the config loader --------------------------------------------------------------------
_FOLDER = Path(tempfile.mkdtemp(prefix="edgelet-props-"))
(_FOLDER / "w.py").write_text("")


def _load(name: str, text: str) -> Any:
    path = _FOLDER / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        return load_config([path])
    except ConfigError as exc:
        assert exc.file == path  # every error names the file
        return exc


@FAST
@given(st.sampled_from(["wrangler.json", "wrangler.jsonc", "wrangler_like.toml"]),
       st.text(alphabet=st.sampled_from(list('{}[]",:/*\n #=.tfnul0123456789abe-+\\\'xyz')), max_size=80))
@example("wrangler.jsonc", "/*")
@example("wrangler.jsonc", '{"a": 1,/* x */}')
@example("wrangler_like.toml", "a = " + "[" * 2000)
@example("wrangler.json", "[" * 100_000)
def test_any_config_text_loads_or_is_a_config_error(name: str, text: str) -> None:
    _load(name, text)


@FAST
@given(json_values)
def test_any_vars_value_loads_or_is_a_config_error(value: Any) -> None:
    result = _load("wrangler.json", json.dumps({"name": "x", "main": "w.py", "vars": {"V": value}}))
    if not isinstance(result, ConfigError):
        assert result.workers[0].vars == {"V": value}


def _jsonc(value: Any, rnd: st.DataObject) -> str:
    """``value`` as JSONC with comments and trailing commas where the rules allow them."""
    gap = rnd.draw(st.sampled_from(["", " ", "\n", " // note, ] } \"\n", "/* a, \" } */", "/*\n*/"]))
    if isinstance(value, dict):
        items = [f"{json.dumps(k)}{gap}:{_jsonc(v, rnd)}" for k, v in value.items()]
        tail = "," if items and rnd.draw(st.booleans()) else ""
        return "{" + gap + ",".join(items) + tail + gap + "}"
    if isinstance(value, list):
        items = [_jsonc(v, rnd) for v in value]
        tail = "," if items and rnd.draw(st.booleans()) else ""
        return "[" + gap + ",".join(items) + tail + gap + "]"
    return gap + json.dumps(value) + gap


@FAST
@given(json_values, st.data())
def test_jsonc_reads_back_what_was_written(value: Any, data: st.DataObject) -> None:
    text = _jsonc(value, data)
    assert loads(text) == value, text
    assert len(strip_jsonc(text)) == len(text)  # positions are kept for error messages


@FAST
@given(st.text(max_size=60))
def test_jsonc_text_parses_or_says_where(text: str) -> None:
    try:
        loads(text)
    except JsoncError as exc:
        if exc.line is not None:
            assert 1 <= exc.line <= text.count("\n") + 1


# -- durations ----------------------------------------------------------------------------
_DURATION_TEXT = st.from_regex(r"\s?-?[0-9]{1,4}(\.[0-9]{1,3})?\s?(ms|s|seconds|minute|hours|days|weeks|years|x)?\s?",
                               fullmatch=True)


@FAST
@given(anything | _DURATION_TEXT | st.floats() | st.text(max_size=30))
@example(float("nan"))
@example(float("inf"))
@example("9" * 5000)
@example("1" * 400 + " seconds")
@example("²")
def test_parse_duration_gives_seconds_or_a_value_error(value: Any) -> None:
    try:
        seconds = parse_duration(value, what="sleep")
    except ValueError as exc:
        assert "sleep" in str(exc)
        return
    assert isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0


# -- KV -----------------------------------------------------------------------------------
@FAST
@given(anything | st.text(max_size=600) | st.sampled_from([".", "..", "\ud800", "a" * 513, "é" * 257]))
def test_kv_key_is_checked(key: Any) -> None:
    try:
        raw = kv.check_key(key, "KV.put")
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("KV.put: ")
        return
    assert isinstance(key, str) and raw == key.encode() and 1 <= len(raw) <= kv.MAX_KEY_BYTES
    assert key not in (".", "..")


@FAST
@given(anything | st.floats() | st.sampled_from(["²", " 10 ", "1e3", "-5", "1001"]))
@example(float("inf"))
@example(float("nan"))
def test_kv_list_limit_is_checked(limit: Any) -> None:
    try:
        checked = kv.check_limit(limit, "KV.list")
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("KV.list: ")
        return
    assert isinstance(checked, int) and 1 <= checked <= kv.MAX_LIST_LIMIT


@FAST
@given(anything | st.floats() | st.integers(), anything | st.floats() | st.integers())
@example(None, float("inf"))
@example(float("inf"), None)
@example(float("-inf"), None)
def test_kv_expiration_is_checked(expiration: Any, ttl: Any) -> None:
    now = 1_800_000_000.0
    try:
        when = kv.resolve_expiration(expiration, ttl, now, "k", "KV.put")
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("KV.put: ")
        return
    assert when is None or (isinstance(when, int) and when >= now + kv.MIN_EXPIRATION_TTL)


@FAST
@given(anything | st.text(max_size=60))
def test_kv_cursor_is_checked(cursor: Any) -> None:
    try:
        kv.decode_cursor(cursor, "KV.list")
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("KV.list: ")


# -- Workflows ----------------------------------------------------------------------------
_ID = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9\-_]*")


@FAST
@given(anything | st.text(max_size=120) | st.from_regex(_ID, fullmatch=True))
@example("abc\n")
@example("a" * 101)
def test_instance_ids_follow_the_pattern(value: Any) -> None:
    try:
        checked = rules.check_instance_id(value, workflow="w")
    except (TypeError, ValueError) as exc:
        assert "instance id" in str(exc)
        return
    assert _ID.fullmatch(checked) and len(checked) <= rules.MAX_ID


@FAST
@given(anything | st.text(max_size=120) | st.from_regex(_ID, fullmatch=True))
@example("approved\n")
def test_event_types_follow_the_pattern(value: Any) -> None:
    try:
        checked = rules.check_event_type(value)
    except (TypeError, ValueError) as exc:
        assert "event type" in str(exc)
        return
    assert _ID.fullmatch(checked) and len(checked) <= rules.MAX_EVENT_TYPE


@FAST
@given(anything | st.text(max_size=300))
def test_step_names_are_checked(value: Any) -> None:
    try:
        checked = rules.check_step_name(value)
    except (TypeError, ValueError) as exc:
        assert "step.do name" in str(exc)
        return
    assert 1 <= len(checked) <= rules.MAX_STEP_NAME
    assert not re.search(r"[\x00-\x1f\x7f]", checked)


# -- Queues -------------------------------------------------------------------------------
@FAST
@given(st.lists(st.integers(min_value=0, max_value=400_000), max_size=120))
def test_queue_batch_sizes_are_checked(sizes: list[int]) -> None:
    try:
        queues.check_sizes(sizes, "QUEUE.sendBatch")
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("QUEUE.sendBatch: ")
        return
    assert 1 <= len(sizes) <= queues.MAX_BATCH_MESSAGES
    assert max(sizes) <= queues.MAX_MESSAGE_BYTES and sum(sizes) <= queues.MAX_BATCH_BYTES


@FAST
@given(anything, st.sampled_from(queues.CONTENT_TYPES[:3]))
def test_queue_message_bodies_encode_or_say_why(body: Any, content_type: str) -> None:
    try:
        data = queues.encode_body(body, content_type, "QUEUE.send")
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("QUEUE.send: ")
        return
    assert isinstance(data, bytes)
    try:
        queues.check_sizes([len(data)], "QUEUE.send")
    except ValueError as exc:
        assert isinstance(exc, queues.QueueLimitError) and "128 KB" in str(exc)
