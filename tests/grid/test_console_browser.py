"""The officer console end to end in headless Debian chromium, driven by Playwright.

The app runs under uvicorn on a loopback port; a village officer logs in through the form,
the router's kind of write opens an incident in the store, the console's polling shows it in
the inbox and reddens its node on the map; the officer acknowledges it from the inbox, the
store records that with the officer as the actor and the node turns amber; a note and a
resolution through the detail panel follow. A screenshot goes to test-artifacts/console.png.

Chromium comes from Debian (``apt-get install chromium``; scripts/install.sh), not from
``playwright install``. Without it the test fails, it does not skip: CI installs it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from grid import IncidentDraft, IncidentStore, Tokens, create_app, hash_password
from tests.grid.conftest import draft
from tianwang.registry import load_registry
from tianwang.services import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
OFFICER, PASSWORD = "off-nanma-dongli", "s3cret-for-the-console"
NODE, OTHER_NODE = "yy-0001", "yy-0002"
WAIT_MS = 15_000  # every wait in the page is bounded by this


@dataclass
class Served:
    url: str
    store: IncidentStore


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    registry = load_registry(ROOT / "examples" / "county.yaml")
    store = IncidentStore(f"sqlite:///{tmp_path / 'incidents.sqlite'}")
    tokens = Tokens(store, {OFFICER: hash_password(PASSWORD)})
    port = free_port()
    config = uvicorn.Config(
        create_app(registry, store, tokens), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the app did not come up under uvicorn"
        time.sleep(0.1)
    try:
        yield Served(url, store)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        store.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium, "
            "or scripts/install.sh); the console's browser test needs it"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def _draft(node: str, value: float, started: datetime) -> IncidentDraft:
    """What the router writes for a PM2.5 exceedance at a dongli node."""
    return draft(node, value, county="yiyuan", township="nanma", village="dongli",
                 officer_id=OFFICER, started_at=started,
                 ack_due_at=started + timedelta(minutes=30))  # fmt: skip


def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.1)


def test_an_officer_sees_an_incident_arrive_and_acknowledges_it(
    served: Served, browser: Any
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    # Everything the page loads comes from the app: anything else is recorded and refused.
    foreign: list[str] = []

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(served.url).netloc:
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    page.route("**/*", guard)

    page.goto(f"{served.url}/")
    expect(page.locator("#login-view")).to_be_visible()
    page.fill("#officer-id", OFFICER)
    page.fill("#password", "wrong")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("wrong")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#console-view")).to_be_visible()
    expect(page.locator("#who")).to_contain_text(OFFICER)
    # The map: the officer's village only (4 air, 1 noise node in dongli), all normal.
    dots = page.locator("#map circle[data-node]")
    expect(dots).to_have_count(5)
    dot = page.locator(f'#map circle[data-node="{NODE}"]')
    expect(dot).to_have_attribute("data-state", "normal")
    expect(page.locator("#empty")).to_be_visible()

    # The router opens an incident; the console's polling brings it in and reddens the node.
    now = datetime.now(UTC)
    incident, opened = served.store.open_or_extend(_draft(NODE, 112.0, now), now=now)
    assert opened
    row = page.locator(f'#incidents tr[data-incident="{incident.id}"]')
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-status", "open")
    expect(row).to_contain_text("PM2.5")
    expect(dot).to_have_attribute("data-state", "open")
    expect(page.locator('#legend [data-count="open"]')).to_have_text("1")

    row.locator('button[data-action="acknowledge"]').click()
    expect(row).to_have_attribute("data-status", "acknowledged")
    _eventually(
        lambda: served.store.get(incident.id).status == "acknowledged", "the store to record it"
    )
    moves = [
        (e.actor, e.from_status, e.to_status)
        for e in served.store.audit(incident.id)
        if e.action == "transition"
    ]
    assert moves == [(OFFICER, "open", "acknowledged")]
    expect(dot).to_have_attribute("data-state", "acknowledged")

    # A second node's incident shows the filters at work and a red node beside an amber one.
    other, _ = served.store.open_or_extend(_draft(OTHER_NODE, 90.0, now), now=now)
    other_row = page.locator(f'#incidents tr[data-incident="{other.id}"]')
    expect(other_row).to_be_visible()
    expect(page.locator(f'#map circle[data-node="{OTHER_NODE}"]')).to_have_attribute(
        "data-state", "open"
    )
    page.select_option("#f-status", "acknowledged")
    expect(other_row).to_have_count(0)
    expect(row).to_be_visible()
    page.select_option("#f-status", "")
    expect(other_row).to_be_visible()

    # The detail panel: a note, then a resolution with a finding.
    row.click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#d-title")).to_contain_text(f"#{incident.id}")
    expect(page.locator("#d-audit")).to_contain_text(OFFICER)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "console.png"
    shot.unlink(missing_ok=True)
    page.screenshot(path=str(shot), full_page=True)

    page.fill("#d-reason", "卡车扬尘 dust from a lorry park")
    page.click("#d-note")
    expect(page.locator("#d-audit")).to_contain_text("dust from a lorry park")
    page.select_option("#d-finding", "confirmed_source")
    page.fill("#d-reason", "lorries washed, yard watered")
    page.click("#d-resolve")
    expect(row).to_have_attribute("data-status", "resolved")
    expect(dot).to_have_attribute("data-state", "normal")
    resolved = served.store.get(incident.id)
    assert (resolved.status, resolved.finding) == ("resolved", "confirmed_source")
    actors = {(e.action, e.actor) for e in served.store.audit(incident.id)}
    assert {("note", OFFICER), ("transition", OFFICER)} <= actors

    assert not foreign, f"the console loaded from elsewhere: {foreign}"
    # Chromium logs the wrong password's 401 answer as a failed load: that one is expected.
    wrong_password = "the server responded with a status of 401"
    assert [e for e in errors if wrong_password not in e] == [], errors
    head = shot.read_bytes()
    assert head.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) >= (1000, 600) and len(head) > 20_000, (width, height, len(head))
