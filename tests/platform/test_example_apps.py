"""The example apps in tests/fixtures/apps, each served by a real `edgelet dev` from a copy of its
folder and its own wrangler.jsonc or wrangler.toml (so the config loader reads them as written).

Each app exercises one API style a Python Worker may be written in; its README.md says which.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

APPS = Path(__file__).resolve().parent.parent / "fixtures" / "apps"
PLAIN_TEXT = "text/plain;charset=UTF-8"


def copy_app(tmp_path: Path, app: str) -> Path:
    folder = tmp_path / app
    shutil.copytree(APPS / app, folder)
    return folder


def serve(dev: Any, tmp_path: Path, app: str, *args: str) -> Any:
    return dev(None, "--in-memory", *args, cwd=copy_app(tmp_path, app))


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- hello world, three ways ---------------------------------------------------------------------

@pytest.mark.parametrize("app", ["handler-hello", "class-hello"])
def test_hello_world_apps(dev: Any, tmp_path: Path, app: str) -> None:
    s = serve(dev, tmp_path, app)
    r = s.get("/")
    assert r.status_code == 200
    assert r.text == "Hello world!"
    assert r.headers["content-type"] == PLAIN_TEXT


def test_template_with_placeholders_is_refused_by_name(tmp_path: Path) -> None:
    """A generated wrangler.toml still says name = "<TBD>": dev must refuse it and say where."""
    folder = copy_app(tmp_path, "toml-template")
    done = subprocess.run([sys.executable, "-m", "edgelet.cli", "dev", "--in-memory"], cwd=folder,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "wrangler.toml" in done.stderr and "name" in done.stderr and "<TBD>" in done.stderr


def test_template_serves_once_filled_in(dev: Any, tmp_path: Path) -> None:
    folder = copy_app(tmp_path, "toml-template")
    config = folder / "wrangler.toml"
    text = config.read_text()
    text = text.replace('name = "<TBD>"', 'name = "from-template"')
    text = text.replace('compatibility_date = "<TBD>"', 'compatibility_date = "2025-11-02"')
    config.write_text(text)
    s = dev(None, "--in-memory", cwd=folder)
    r = s.get("/")
    assert r.status_code == 200
    assert r.text == "Hello world!"
    assert r.headers["content-type"] == PLAIN_TEXT


# -- KV --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("app", ["js-kv-roundtrip", "class-kv-roundtrip"])
def test_kv_roundtrip_apps(dev: Any, tmp_path: Path, app: str) -> None:
    s = dev(None, "-c", "wrangler.jsonc", cwd=copy_app(tmp_path, app))
    r = s.get("/")
    assert r.status_code == 200 and r.text == "baz"
    assert r.headers["content-type"] == PLAIN_TEXT


def test_link_shortener(dev: Any, tmp_path: Path) -> None:
    s = dev(None, "-c", "wrangler.jsonc", cwd=copy_app(tmp_path, "link-shortener"))
    r = s.post("/shorten", json={"url": "https://example.com/page"})
    assert r.status_code == 201, r.text
    body = r.json()
    code = body["code"]
    assert re.fullmatch(r"[0-9a-f]{8}", code)
    assert body["url"] == "https://example.com/page"
    assert body["short_url"] == f"{s.url}/{code}"
    r = s.get(f"/{code}", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "https://example.com/page"
    missing = s.get("/unknown1")
    assert missing.status_code == 404 and missing.json() == {"error": "not found"}
    keys = s.api("GET", "/kv/LINKS/keys")["result"]
    assert [k["name"] for k in keys] == [code]

    wrong = s.get("/shorten")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert s.request("DELETE", f"/{code}").headers["allow"] == "GET"
    assert s.post("/shorten", content=b"not json").status_code == 400
    assert s.post("/shorten", json={"url": "ftp://example.com/"}).status_code == 400
    assert s.post("/shorten", json={"url": "http://example.com:99999/"}).status_code == 400


# -- cron --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("app", ["cron-full-signature", "cron-short-signature"])
@pytest.mark.parametrize("cron", ["*/1+*+*+*+*", "*+*+*+*+*"])
def test_cron_apps(dev: Any, tmp_path: Path, app: str, cron: str) -> None:
    s = serve(dev, tmp_path, app)
    home = s.get("/")
    assert home.text.startswith("Hello from Cron Worker")
    assert home.headers["content-type"] == PLAIN_TEXT
    assert s.get(f"/cdn-cgi/handler/scheduled?cron={cron}").status_code == 200
    wait_for(lambda: "Scheduled task has been executed." in s.logs(), 5, "the scheduled handler's log line")


# -- static assets ---------------------------------------------------------------------------------

ASSET_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".svg": "image/svg+xml", ".ico": "image/vnd.microsoft.icon", ".jpg": "image/jpeg"}


@pytest.mark.parametrize("app", ["assets-passthrough", "assets-custom-index"])
def test_static_assets_apps(dev: Any, tmp_path: Path, app: str) -> None:
    s = serve(dev, tmp_path, app)
    home = s.get("/")
    assert home.status_code == 200 and "<html" in home.text.lower()
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert home.content == (APPS / app / "static" / "index.html").read_bytes()
    served = 0
    for path in sorted((APPS / app / "static").iterdir()):
        if path.suffix in ASSET_TYPES:
            r = s.get("/" + path.name)
            assert r.status_code == 200, path.name
            assert r.headers["content-type"] == ASSET_TYPES[path.suffix], path.name
            assert r.content == path.read_bytes(), path.name
            served += 1
    assert served >= 2


def test_worker_rendered_page_beside_assets(dev: Any, tmp_path: Path) -> None:
    s = serve(dev, tmp_path, "assets-custom-index")
    page = s.get("/home")
    assert page.status_code == 200 and "Rendered by the Worker" in page.text
    assert page.headers["content-type"] == "text/html"
    # Not an asset and not /home: the Worker forwards request.js_object to ASSETS, which has no such file.
    assert s.get("/nothing-here.txt").status_code == 404


# -- Durable Objects -------------------------------------------------------------------------------

@pytest.mark.parametrize("app", ["do-json-list", "do-native-list"])
def test_durable_object_list_apps(dev: Any, tmp_path: Path, app: str) -> None:
    s = serve(dev, tmp_path, app)
    assert s.get("/groceries/show").text == "No messages"
    assert s.get("/groceries/add/milk").text == "Message sent"
    assert s.get("/groceries/add/eggs").text == "Message sent"
    assert s.get("/groceries/show").text == "milk\neggs"
    assert s.get("/other/show").text == "No messages"
    assert s.get("/state-room/show").text == "No messages"
    assert s.get("/state-room/add/hi").text == "Message sent"
    assert s.get("/state-room/show").text == "hi"
    assert s.get("/other-room/show").text == "No messages"
    assert s.get("/").status_code == 400
    assert s.get("/groceries/rename").status_code == 404


# -- Workflows -------------------------------------------------------------------------------------

def test_workflow_with_legacy_depends(dev: Any, tmp_path: Path) -> None:
    """Two prerequisite steps that sleep for seconds, then `depends=[...]` with concurrent=True."""
    s = serve(dev, tmp_path, "workflow-legacy-deps")
    index = s.get("/").text
    assert "/start" in index and "/status" in index
    started = s.get("/start").text
    assert "workflow with ID:" in started
    instance_id = started.split("ID:")[-1].strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", instance_id), instance_id
    first = s.get(f"/status/{instance_id}")
    assert first.status_code == 200 and isinstance(first.json(), dict)

    def finished() -> dict[str, Any] | None:
        status = s.get(f"/status/{instance_id}").json()
        return status if status["status"] in ("complete", "errored") else None

    status = wait_for(finished, 60, f"workflow {instance_id} to finish")
    assert status["status"] == "complete", status
    logs = s.logs()
    assert logs.index("executing dep1") < logs.index("I awaited the first two steps")
    assert logs.index("executing dep2") < logs.index("I awaited the first two steps")


def test_job_pipeline_queue_to_workflow(dev: Any, tmp_path: Path) -> None:
    """HTTP -> queue producer -> consumer -> create_batch -> workflow with implicit dependencies."""
    s = serve(dev, tmp_path, "job-pipeline")
    good = s.post("/api/jobs", content="the quick brown fox\njumps over the lazy dog",
                  headers={"content-type": "text/plain"})
    assert good.status_code == 202, good.text
    assert good.json()["status"] == "queued"
    good_id = good.json()["jobId"]
    empty_words = s.post("/api/jobs", content="   \n  ", headers={"content-type": "text/markdown"})
    assert empty_words.status_code == 202, empty_words.text
    blank_id = empty_words.json()["jobId"]
    # A message no upload produced: the consumer must ack and skip it, not fail the batch.
    sent = s.api("POST", "/queues/stats-jobs/messages", json={"body": {"jobId": "not-a-job"}})
    assert sent["success"], sent

    def settled(job_id: str) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            body = s.get(f"/api/jobs/{job_id}").json()
            return body if body["status"] in ("complete", "failed") else None
        return check

    done = wait_for(settled(good_id), 30, f"job {good_id}")
    assert done == {"jobId": good_id, "status": "complete",
                    "result": {"words": 9, "lines": 2, "longest": "quick"}}
    failed = wait_for(settled(blank_id), 30, f"job {blank_id}")
    assert failed == {"jobId": blank_id, "status": "failed", "reason": "the document has no words"}
    status = s.api("GET", f"/workflows/text-stats/instances/{blank_id}")["result"]
    assert status["status"] == "errored"
    wait_for(lambda: "dropping queue message" in s.logs(), 10, "the malformed message to be dropped")

    assert s.post("/api/jobs", content=b"\x89PNG", headers={"content-type": "image/png"}).status_code == 415
    assert s.post("/api/jobs", content=b"", headers={"content-type": "text/plain"}).status_code == 400
    assert s.get("/api/jobs/" + "0" * 32).status_code == 404
    assert s.get("/api/jobs/not-an-id").status_code == 404


# -- binding APIs checked from inside a Worker -----------------------------------------------------

#: area -> how many checks its module holds; a check that silently vanished would fail here.
CHECK_COUNTS = {"kv": 23, "queue": 12, "do": 22, "workflow": 20}


@pytest.mark.parametrize("area", sorted(CHECK_COUNTS))
def test_binding_checks_inside_a_worker(dev: Any, tmp_path: Path, area: str) -> None:
    s = serve(dev, tmp_path, "binding-checks")
    r = s.get(f"/checks/{area}", timeout=120)
    assert r.status_code == 200, r.text
    outcomes = r.json()
    assert len(outcomes) == CHECK_COUNTS[area], sorted(outcomes)
    assert {name: outcome for name, outcome in outcomes.items() if outcome != "ok"} == {}


def test_binding_checks_rejects_unknown_area(dev: Any, tmp_path: Path) -> None:
    s = serve(dev, tmp_path, "binding-checks")
    r = s.get("/checks/d1")
    assert r.status_code == 404 and "kv" in r.json()["error"]
