"""The explorer in headless Chromium: what a user clicks through, checked against the control
API, with screenshots for docs/explorer.md. Every test fails on a console error."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

EXPLORER = "/cdn-cgi/explorer"


def wait_for(check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_find_a_kv_key_and_edit_it(shop: Any, page: Any) -> None:
    p = page.page
    p.goto(shop.url + EXPLORER + "/kv")
    p.fill("#kv-prefix", "the")
    p.click("#kv-find button[type=submit]")
    # the prefix finds theme, not greeting
    p.wait_for_function("[...document.querySelectorAll('#kv-keys tbody tr')].map(r => r.dataset.key).join() "
                        "=== 'theme'")
    p.click("#kv-keys a:text('theme')")
    p.wait_for_function("document.querySelector('#kv-value').value === 'light'")
    p.fill("#kv-value", "dark")
    p.fill("#kv-metadata", '{"changed_by": "explorer"}')
    p.click("#kv-save")
    p.wait_for_selector("#message.info:has-text('saved theme')")
    page.shot("kv")
    got = shop.api("GET", "/kv/settings/values/theme")
    assert got["result"] == "dark"
    assert got["result_info"]["metadata"] == {"changed_by": "explorer"}
    # and the Worker sees it too
    assert shop.api("GET", "/kv/settings/metadata/theme")["result"] == {"changed_by": "explorer"}


def test_bad_kv_metadata_is_a_message_and_stores_nothing(shop: Any, page: Any) -> None:
    p = page.page
    page.expected_statuses = {400}
    p.goto(shop.url + EXPLORER + "/kv?ns=settings&key=greeting")
    p.wait_for_function("document.querySelector('#kv-value').value === 'hello'")
    p.fill("#kv-value", "bye")
    p.fill("#kv-ttl", "5")  # below Cloudflare's minimum of 60
    p.click("#kv-save")
    msg = p.wait_for_selector("#message:not([hidden]):not(.info)")
    assert "60" in msg.inner_text() and "expiration" in msg.inner_text().lower()
    assert shop.api("GET", "/kv/settings/values/greeting")["result"] == "hello"


def test_watch_an_instance_move_along_its_timeline_and_send_its_event(shop: Any, page: Any) -> None:
    p = page.page
    p.goto(shop.url + EXPLORER + "/workflows")
    p.wait_for_selector("#wf-name option[value='approval']", state="attached")
    p.fill("#create-id", "order-1")
    p.fill("#create-params", '{"order": 7}')
    p.click("#wf-create button[type=submit]")
    p.wait_for_url("**/workflows/approval/order-1")
    # the first attempt of "prepare" fails, the retry succeeds, then it sleeps and waits
    p.wait_for_selector("#timeline g.row[data-name='prepare'] rect.fail")
    p.wait_for_selector("#timeline g.row[data-name='prepare'] rect.ok", timeout=15000)
    assert p.locator("#timeline g.row[data-name='prepare'] line.gap").count() >= 1  # the retry gap
    p.wait_for_selector("#timeline g.row[data-type='sleep'] rect.sleep")
    p.wait_for_selector("#timeline g.row[data-type='waitForEvent'] rect.wait", timeout=15000)
    p.wait_for_selector("#inst-status:text('waiting')")
    assert "approved" in p.inner_text("#waiting-for")
    p.click("#timeline g.row[data-name='prepare']")
    detail = p.inner_text("#step-detail")
    assert "the printer is warming up" in detail and '"prepared"' in detail
    page.shot("instance-waiting")
    # a payload that is not JSON: a message naming it, nothing sent
    page.expected_statuses = {400, 409}
    p.fill("#event-payload", "{by: ada}")
    p.click("#send-event button[type=submit]")
    msg = p.wait_for_selector("#message:not([hidden]):not(.info)")
    assert "the event payload is not valid JSON" in msg.inner_text()
    # the event it waits for
    p.fill("#event-type", "approved")
    p.fill("#event-payload", '{"by": "ada"}')
    p.click("#send-event button[type=submit]")
    p.wait_for_selector("#inst-status:text('complete')", timeout=15000)
    p.wait_for_selector("#timeline g.row[data-name='finish'][data-state='ok']")
    assert json.loads(p.inner_text("#inst-output")) == {"approved_by": "ada"}
    page.shot("instance-complete")
    # an action on a finished instance: the API's refusal, as it is
    p.eval_on_selector("[data-action='terminate']", "b => b.disabled = false")
    p.click("[data-action='terminate']")
    msg = p.wait_for_selector("#message:not([hidden]):not(.info)")
    assert "cannot terminate instance 'order-1'" in msg.inner_text() and "already complete" in msg.inner_text()
    # delete it: back to the list, which no longer has it
    p.click("#inst-delete")
    p.wait_for_url("**/workflows?name=approval")
    p.wait_for_selector("#wf-page:has-text('0 instance')")
    assert shop.api("GET", "/workflows/approval/instances/order-1")["success"] is False


def test_instance_list_filters_and_id_search(shop: Any, page: Any) -> None:
    for i in range(3):
        shop.api("POST", "/workflows/approval/instances", json={"instance_id": f"batch-{i}"})
    shop.api("POST", "/workflows/approval/instances", json={"instance_id": "other"})
    wait_for(lambda: shop.api("GET", "/workflows/approval")["result"]["instances"]["waiting"] == 4,
             what="four waiting instances")
    shop.api("PATCH", "/workflows/approval/instances/other/status", json={"status": "terminate"})
    p = page.page
    p.goto(shop.url + EXPLORER + "/workflows?name=approval")
    p.wait_for_selector("#instances tr[data-id='other']")
    p.fill("#wf-id", "batch-")
    p.click("#wf-filter button[type=submit]")
    p.wait_for_selector("#wf-page:has-text('3 instance')")
    assert sorted(p.locator("#instances tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)")) == \
        ["batch-0", "batch-1", "batch-2"]
    p.fill("#wf-id", "")
    p.select_option("#wf-status", "terminated")
    p.wait_for_selector("#wf-page:has-text('1 instance')")
    assert p.locator("#instances tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)") == ["other"]
    page.shot("workflows")


def test_move_a_dead_letter_back(shop: Any, page: Any) -> None:
    assert shop.request("PUT", "/cdn-cgi/edgelet/api/kv/settings/values/mail-down", content=b"yes").status_code == 200
    sent = shop.api("POST", "/queues/mail/messages", json={"body": {"to": "ada@example.com"}})["result"]["id"]
    wait_for(lambda: shop.api("GET", "/queues/mail-dlq")["result"]["backlog"] == 1, what="the dead letter")
    shop.api("DELETE", "/kv/settings/values/mail-down")  # the mail server is back
    p = page.page
    p.goto(shop.url + EXPLORER + "/queues")
    p.click("#queues a:text('mail-dlq')")
    row = p.wait_for_selector(f"#messages tr[data-id='{sent}']")
    assert "ada@example.com" in row.inner_text()
    page.shot("queues")
    p.click(f"#messages tr[data-id='{sent}'] button:has-text('Move back to mail')")
    p.wait_for_selector(f"#message.info:has-text('moved {sent} back to mail')")
    wait_for(lambda: shop.api("GET", f"/kv/settings/values/sent:{sent}")["success"], what="the delivery")
    assert shop.api("GET", "/queues/mail-dlq")["result"]["backlog"] == 0


def test_queue_send_and_purge(shop: Any, page: Any) -> None:
    p = page.page
    p.goto(shop.url + EXPLORER + "/queues?queue=mail-dlq")
    p.wait_for_selector("#queue:not([hidden])")
    p.fill("#send-body", '{"n": 1}')
    p.click("#queue-send button[type=submit]")
    p.wait_for_selector("#message.info:has-text('sent message')")
    p.wait_for_selector("#messages tbody tr")
    p.click("#purge")
    p.click("#purge-confirm")
    p.wait_for_selector("#message.info:has-text('purged 1 message')")
    assert shop.api("GET", "/queues/mail-dlq")["result"]["backlog"] == 0


def test_sql_grids_and_their_errors(shop: Any, page: Any) -> None:
    p = page.page
    page.expected_statuses = {400}
    p.goto(shop.url + EXPLORER + "/d1")
    p.click("#d1-tables a:text('orders')")
    p.wait_for_selector("#sql-result td:text('mug')")
    page.shot("d1")
    p.fill("#sql", "SELEC item FROM orders")
    p.click("#sql-form button[type=submit]")
    err = p.wait_for_selector("#sql-result td.error")
    assert "syntax error" in err.inner_text()
    assert p.is_hidden("#message")  # shown in the grid, not as a broken page
    # a result past the control API's cap is shown cut, and says so (an endless CTE answers)
    p.fill("#sql", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c")
    p.click("#sql-form button[type=submit]")
    cut = p.wait_for_selector("#sql-result .truncated")
    assert cut.inner_text().startswith("statement 1: only its first 10,000 rows are returned")
    assert p.locator("#sql-result tbody tr").count() == 10_000
    page.shot("d1-truncated", full_page=False)  # (the page is 10,000 rows long)
    # a Durable Object's SQL
    p.goto(shop.url + EXPLORER + "/durable-objects")
    p.click("#do-objects a")
    p.wait_for_selector("#do-keys td:text('owner')")
    p.click("#do-tables a:has-text('items')")
    p.wait_for_selector("#sql-result td:text('tea')")
    assert "No alarm" in p.inner_text("#do-alarm")
    page.shot("durable-objects")
    p.fill("#sql", "SELECT nope FROM items")
    p.click("#sql-form button[type=submit]")
    assert "no such column" in p.wait_for_selector("#sql-result td.error").inner_text()


def test_r2_browse_upload_download(shop: Any, page: Any, tmp_path: Any) -> None:
    p = page.page
    p.goto(shop.url + EXPLORER + "/r2")
    p.wait_for_selector("#r2-objects tr[data-prefix='docs/']")
    assert p.locator("#r2-objects tr[data-key='top.txt']").count() == 1
    p.click("#r2-objects a:text('▸ docs/')")
    p.wait_for_selector("#r2-objects tr[data-key='docs/readme.txt']")
    assert p.locator("#r2-objects tr[data-prefix='docs/img/']").count() == 1
    upload = tmp_path / "notes.txt"
    upload.write_text("uploaded from the explorer")
    p.set_input_files("#r2-file", str(upload))
    p.click("#r2-upload button[type=submit]")
    p.wait_for_selector("#r2-objects tr[data-key='docs/notes.txt']")
    page.shot("r2")
    with p.expect_download() as dl:
        p.click("#r2-objects tr[data-key='docs/notes.txt'] a:text('download')")
    assert open(dl.value.path()).read() == "uploaded from the explorer"


def test_r2_upload_over_the_limit_is_a_message(dev: Any, page: Any, tmp_path: Any) -> None:
    from .explorer_app import APP
    server = dev(APP, "--max-body-size", "2000")
    server.get("/setup")
    p = page.page
    page.expected_statuses = {413}
    p.goto(server.url + EXPLORER + "/r2")
    p.wait_for_selector("#r2-objects tr[data-key='top.txt']")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 5000)
    p.set_input_files("#r2-file", str(big))
    p.click("#r2-upload button[type=submit]")
    msg = p.wait_for_selector("#message:not([hidden]):not(.info)")
    assert "larger than the limit of 2000 bytes" in msg.inner_text()
    assert p.locator("#r2-objects tr[data-key='big.bin']").count() == 0


@pytest.mark.parametrize("mount", ["/cdn-cgi/explorer", "/cdn-cgi/local/explorer"])
def test_every_section_loads_under_both_paths(shop: Any, page: Any, mount: str) -> None:
    p = page.page
    p.goto(shop.url + mount)
    p.wait_for_selector(".card[data-worker='shop'] td:text('SETTINGS')")
    for section, ready in [("kv", "#kv-keys tr[data-key='theme']"), ("d1", "#d1-tables a"),
                           ("r2", "#r2-objects tr[data-key='top.txt']"), ("durable-objects", "#do-objects a"),
                           ("queues", "#queues tr[data-queue='mail']"), ("workflows", "#wf-page")]:
        p.click(f"header nav a[href$='/{section}']")
        p.wait_for_selector(ready)
        assert p.url.startswith(shop.url + mount)
    if mount == "/cdn-cgi/explorer":
        p.goto(shop.url + mount + "/workers")
        shop.get("/")  # a request shows in the live log
        p.wait_for_selector("#log div:has-text('GET /')", timeout=10000)
        page.shot("workers")
