"""The dashboard in a real headless Chromium against a real ``computeplane serve``: the node timeline rises and
falls back to zero, a job's logs stream while it runs, a workspace-limited key sees only its workspace, and
/api/docs works offline with "Authorize"."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import artifact, headless_chromium
from tests.e2e.server import TEST_API_KEY, Server, http, start_server

TEAM_KEY = "team-a-dashboard-key"
SLOW = 60_000  # ms: a loaded 2-core machine
AT_LEAST_ONE = re.compile(r"^[1-9][0-9]*$")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def dashboard_server(tmp_path: Path) -> Iterator[Server]:
    data = tmp_path / "data"
    data.mkdir()
    keys = {"keys": [{"name": "team-a", "key": TEAM_KEY, "workspaces": ["team-a"]}]}
    (data / "api-keys.json").write_text(json.dumps(keys))
    server = start_server(data)
    try:
        yield server
    finally:
        server.stop()


def signed_in(browser: Browser, server: Server, key: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(f"{server.url}/")  # redirected to the dashboard
    page.fill("#key-input", key)
    page.click("#key-entry button[type=submit]")
    expect(page.locator("#key-form")).to_be_hidden(timeout=SLOW)
    assert key not in page.url
    return page


def test_the_node_timeline_rises_and_falls_back_to_zero_and_job_logs_stream(browser: Browser,
                                                                             dashboard_server: Server) -> None:
    server = dashboard_server
    spec = {"name": "viz", "vm_size": "STANDARD_D2_V2", "max_nodes": 2, "idle_seconds_before_scaledown": 2}
    assert http.post(f"{server.api()}/clusters", json=spec).status_code == 202
    page = signed_in(browser, server, TEST_API_KEY)
    assert page.evaluate("sessionStorage.getItem('computeplane.apiKey')") == TEST_API_KEY

    page.goto(f"{server.url}/api/dashboard/#/w/default")
    expect(page.locator("#clusters tr[data-cluster=viz]")).to_be_visible(timeout=SLOW)
    expect(page.locator(".quota").first).to_contain_text("vCPUs")

    page.click("#clusters a:text('viz')")
    timeline = page.locator("#node-timeline")
    expect(timeline).to_have_attribute("data-peak", "0", timeout=SLOW)
    expect(page.locator("#scale-settings")).to_contain_text("idle seconds before scale-down")

    streaming = ("import time\nprint('first line', flush=True)\ntime.sleep(6)\nprint('second line', flush=True)")
    jobs = [http.post(f"{server.api()}/clusters/viz/jobs", json={"command": [sys.executable, "-c", streaming]})
            for _ in range(2)]
    assert all(j.status_code == 202 for j in jobs), [j.text for j in jobs]

    # Live: the page redraws without a reload as the nodes come, run the jobs and go.
    expect(timeline).to_have_attribute("data-peak", AT_LEAST_ONE, timeout=SLOW)
    expect(page.locator("#jobs tr[data-job]")).to_have_count(2, timeout=SLOW)
    page.screenshot(path=str(artifact("dashboard-cluster-busy.png")), full_page=True)

    job_id = jobs[0].json()["id"]
    page.click(f"#jobs a:text('{job_id}')")
    expect(page.locator("#job-logs")).to_contain_text("first line", timeout=SLOW)
    assert "second line" not in page.locator("#job-logs").inner_text()  # seen while it still runs
    expect(page.locator("#job-view")).to_have_attribute("data-state", "Running")
    expect(page.locator("#job-logs")).to_contain_text("second line", timeout=SLOW)
    expect(page.locator("#job-view")).to_have_attribute("data-state", "Completed", timeout=SLOW)
    expect(page.locator("#job-history")).to_contain_text("Running")
    page.screenshot(path=str(artifact("dashboard-job.png")), full_page=True)

    page.click("#job-view a:text('viz')")
    expect(timeline).to_have_attribute("data-current", "0", timeout=SLOW)
    expect(timeline).to_have_attribute("data-peak", AT_LEAST_ONE)
    expect(page.locator("#timeline-summary")).to_contain_text("now 0 node(s)")
    assert page.locator("#node-timeline polygon.band.running").count() == 1
    page.screenshot(path=str(artifact("dashboard-cluster.png")), full_page=True)
    page.close()


def test_a_workspace_limited_key_sees_only_its_workspace(browser: Browser, dashboard_server: Server) -> None:
    server = dashboard_server
    spec = {"name": "hidden", "vm_size": "STANDARD_D2_V2", "max_nodes": 1}
    assert http.post(f"{server.api('default')}/clusters", json=spec).status_code == 202
    assert http.post(f"{server.api('team-a')}/clusters", json=dict(spec, name="mine")).status_code == 202

    page = signed_in(browser, server, TEAM_KEY)
    page.wait_for_url("**/#/w/team-a", timeout=SLOW)  # its one workspace opens by itself
    expect(page.locator("#clusters tr[data-cluster=mine]")).to_be_visible(timeout=SLOW)
    assert page.locator("#clusters tr[data-cluster=hidden]").count() == 0

    page.goto(f"{server.url}/api/dashboard/#/w/default")
    expect(page.locator("#view-error")).to_contain_text("not valid for workspace 'default'", timeout=SLOW)
    assert page.locator("#clusters").count() == 0
    page.goto(f"{server.url}/api/dashboard/#/w/default/c/hidden")
    expect(page.locator("#view-error")).to_contain_text("Not allowed", timeout=SLOW)
    assert page.locator("#node-timeline").count() == 0
    page.close()
    # The server's access log: one line per request, with its status and latency.
    assert re.search(r'access: 127\.0\.0\.1 "GET /api/workspaces/default/clusters" 403 [0-9.]+ ms', server.log())


def test_api_docs_load_without_another_origin_and_offer_authorize(browser: Browser, server: Server) -> None:
    page = browser.new_page()
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(urlparse(request.url).netloc))
    page.goto(f"{server.url}/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("ComputePlane", timeout=SLOW)
    page.click("button.authorize")
    expect(page.locator(".modal-ux")).to_contain_text("x-functions-key", timeout=SLOW)
    page.fill(".modal-ux input", TEST_API_KEY)
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.close-modal")
    # "Try it out" on listing clusters sends the key: the answer is 200, not 401.
    operation = page.locator("#operations-default-list_clusters_api_workspaces__workspace__clusters_get")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("input[placeholder=workspace]").fill("default")
    operation.locator("button.execute").click()
    expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_contain_text("200",
                                                                                                 timeout=SLOW)
    assert origins == {urlparse(server.url).netloc}, origins
    page.close()
