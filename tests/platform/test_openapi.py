"""The control API's OpenAPI document (SPEC 5): every mounted route is in it, described by
the plug-in that mounts it, and a fuzzer driven by it gets no 5xx from a running `edgelet dev`."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from http_app import ARGS, FILES
from procstats import tree_cpu_seconds

from edgelet.openapi import mounted_routes, undocumented
from edgelet.testing import Platform

API = "/cdn-cgi/edgelet/api"


async def test_every_mounted_route_is_in_the_openapi_document(tmp_path: Path) -> None:
    for name in ("wrangler_like.toml", "web.py", "other.py"):
        (tmp_path / name).write_text(textwrap.dedent(FILES[name]).lstrip())
    async with Platform(tmp_path / "wrangler_like.toml") as p:
        resp = await p.fetch(f"{API}/openapi.json")
        assert resp.status == 200
        doc = await resp.json()
        assert doc["openapi"].startswith("3.1")
        mounted = {(path.replace(":path", ""), method)
                   for path, route in mounted_routes(p._app.api_routes, API)
                   for method in route.methods - {"HEAD"}}
        assert len(mounted) > 20
        documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
        assert mounted == documented
        assert undocumented(doc) == []
        for path, item in doc["paths"].items():
            for method, op in item.items():
                assert op["summary"] and op["responses"], (method, path)
                params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
                assert params == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
        kv_put = doc["paths"][f"{API}/kv/{{namespace}}/values/{{key}}"]["put"]
        assert "application/octet-stream" in kv_put["requestBody"]["content"]
        create = doc["paths"][f"{API}/workflows/{{name}}/instances"]["post"]
        assert create["responses"]["201"]["content"]["application/json"]["schema"]["required"] == [
            "success", "errors", "messages", "result"]


def fuzz(base_url: str, max_examples: int) -> tuple[list[float], list[str]]:
    """Run every operation of the served document with generated (valid and invalid) input;
    return each call's latency in seconds and the calls answered with a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{base_url}{API}/openapi.json")
    latencies: list[float] = []
    errors: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/tail"):
            continue  # a stream that ends only when the client goes away
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def call(case: Any) -> None:
                started = time.monotonic()
                response = case.call(base_url=base_url, timeout=30)
                latencies.append(time.monotonic() - started)
                if response.status_code >= 500:
                    errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                  f"{response.text[:300]}")
            try:
                call()
            except Unsatisfiable:  # no invalid input exists (an operation without parameters)
                assert mode is GenerationMode.NEGATIVE
    return latencies, errors


@pytest.mark.slow
def test_fuzzing_the_control_api_finds_no_server_errors(dev: Any) -> None:
    """No input makes the control API answer 5xx, or answer slowly. "Slowly" is judged by
    what the machine's load barely moves: the CPU the server's process tree spends per call
    (~1 ms on a quiet machine) and the slowest single call (~25 ms quiet) against a bound far
    above what load adds but far below a lost wake-up or a client timeout. The fuzzer's own
    time (most of the wall time, and what grows with the load) is not asserted."""
    s = dev(FILES, *ARGS)
    cpu_before = tree_cpu_seconds(s.proc.pid)
    latencies, errors = fuzz(s.url, max_examples=15)
    server_cpu = tree_cpu_seconds(s.proc.pid) - cpu_before
    assert errors == [], "\n".join(errors[:20])
    assert len(latencies) > 300, len(latencies)
    assert server_cpu / len(latencies) < 0.010, f"{server_cpu:.2f} s of server CPU for {len(latencies)} calls"
    assert max(latencies) < 5.0, f"slowest call {max(latencies):.1f} s"
    assert "Traceback" not in s.logs(), s.logs()[-3000:]
