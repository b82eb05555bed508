"""The explorer at scale: 50,000 instances page without loading them all, and a 1,000-step
timeline draws in under a second (issue 18), in the real browser."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from explorer_bench import APP, seed  # noqa: E402

from .conftest import SHOTS  # noqa: E402


def test_50000_instances_and_a_1000_step_timeline(dev: Any, page: Any, tmp_path: Path) -> None:
    for name, text in APP.items():
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip("\n"))
    seed(tmp_path / "state", "flow", 50_000, 1000)
    server = dev(None, "--persist-to", str(tmp_path / "state"), cwd=tmp_path)
    p = page.page
    base = server.url + "/cdn-cgi/explorer"
    # the same browser's first render of a one-row page, now: what the machine's load adds
    # to every page (a quiet machine: ~100-300 ms), so the bounds below hold on a busy one
    p.goto(f"{base}/workflows/flow/inst-000000")
    p.wait_for_selector("#timeline", state="attached")
    baseline = float(p.evaluate("document.body.dataset.firstRender"))
    bound = 1000 + 2 * baseline
    p.goto(f"{base}/workflows?name=flow")
    p.wait_for_selector("#wf-page:has-text('page 1 of 1001 · 50001 instance(s)')")
    assert float(p.evaluate("document.body.dataset.firstRender")) < bound
    assert p.locator("#instances tbody tr").count() == 50  # one page, not 50,000 rows
    p.click("#wf-next")
    p.wait_for_selector("#wf-page:has-text('page 2 of 1001')")
    p.goto(f"{base}/workflows?name=flow&page=1001")
    p.wait_for_selector("#instances tr[data-id='inst-000000']")
    p.goto(f"{base}/workflows/flow/long")
    p.wait_for_selector("#timeline g.row >> nth=999", state="attached")
    took = float(p.evaluate("document.body.dataset.firstRender"))
    assert took < bound, f"the 1,000-step timeline took {took:.0f} ms to first render ({baseline:.0f} ms for one step)"
    # retried steps show their failed attempts and the gap before the retry
    assert p.locator("#timeline g.row[data-name='step-3'] rect.fail").count() == 2
    assert p.locator("#timeline g.row[data-name='step-3'] line.gap").count() == 2
    assert p.locator("#timeline g.row[data-type='sleep']").count() == 100
    p.set_viewport_size({"width": 1400, "height": 900})
    SHOTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(SHOTS / "explorer-timeline-1000.png"))
