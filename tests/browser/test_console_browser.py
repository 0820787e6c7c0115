"""The operator console in a real browser (headless Chromium): sign in, watch a device go
silent, see its alert arrive live, hear a new alarm, acknowledge and resolve from the keyboard
with notes, switch to the wall-screen mode."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from telecare.api.tokens import Role, create_token
from telecare.service import Service
from tests.chromium import SCREENSHOTS, chromium, page_errors
from tests.support import (
    Devices,
    Mqtt,
    alarm,
    api_client,
    heartbeat,
    look_at_expiry,
    topic,
    wait_for,
)

VIEWPORT = {"width": 1600, "height": 1000}
# Counts the tones the console starts (Web Audio oscillators): the audible cue, observed.
COUNT_TONES = """
window.tones = 0;
const created = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.tones += 1;
  return created.call(this);
};
"""


async def _sign_in(page: Page, service: Service, token: str) -> None:
    await page.goto(f"{service.api_url}/")
    await page.fill("#token", token)
    await page.press("#token", "Enter")
    await expect(page.locator("#live")).to_have_text("● Live", timeout=10_000)
    await expect(page.locator("#who")).to_have_text("alice")


async def test_an_operator_sees_a_silent_device_live_and_acknowledges_it(
    own_service: Service, mqtt: Mqtt, tmp_path: Path
) -> None:
    service = own_service
    operator_token = await create_token(service.pool, role=Role.OPERATOR, name="alice")
    async with await api_client(service, Role.ADMIN) as admin:
        devices = Devices(admin)
        silent = (await devices.register(heartbeat_interval_s=10, heartbeat_grace_s=0))["device_id"]
        caller = (await devices.register(postcode="SW1A 1AA"))["device_id"]
        await mqtt.publish(topic(silent, "heartbeat"), heartbeat(interval_s=10))
        await mqtt.publish(topic(caller, "heartbeat"), heartbeat())

        async with chromium() as browser:
            page = await browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            await page.add_init_script(COUNT_TONES)
            errors = page_errors(page)
            await _sign_in(page, service, operator_token)
            await page.evaluate("window.loadedOnce = true")  # gone if the page reloads

            # The device falls silent: its alert appears without a reload.
            row = page.locator(".row", has_text=silent)
            await expect(row).to_contain_text("Heartbeat missed", timeout=30_000)
            await expect(row).to_contain_text("Waiting")
            # A fall alarm arrives: it rings, flashes and goes to the top of the queue.
            await mqtt.publish(topic(caller, "alarm"), json.dumps(alarm("fall")))
            alarm_row = page.locator(".row.kind-alarm", has_text=caller)
            await expect(alarm_row).to_contain_text("Fall", timeout=10_000)
            await expect(page.locator("#banner")).to_contain_text(f"NEW ALARM: Fall · {caller}")
            assert await page.title() == "(1) Telecare console"
            assert await page.evaluate("window.tones") >= 6, "the alarm rang"
            await expect(page.locator(".queue .row").first).to_have_attribute(
                "data-key", await alarm_row.get_attribute("data-key") or "?"
            )

            # From the keyboard: move to the alert, acknowledge it with a note.
            await page.keyboard.press("j")
            await expect(row).to_have_class(_has("selected"))
            await page.keyboard.press("a")
            await page.fill("#action-note", "calling the resident's daughter")
            await page.keyboard.press("Enter")
            await expect(row).to_contain_text("Acknowledged by alice")
            await expect(page.locator(".section").nth(1)).to_have_text("In hand · 1")
            assert await page.evaluate("window.loadedOnce") is True

            shot = tmp_path / "console-queue.png"
            await page.screenshot(path=str(shot), full_page=True)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, SCREENSHOTS / shot.name)
            print(f"console screenshot: {SCREENSHOTS / shot.name}")

            # Still selected: resolve it with a note, from the keyboard.
            await page.keyboard.press("r")
            await page.fill("#action-note", "resident fine, hub power cycled")
            await page.keyboard.press("Enter")
            await expect(row).to_contain_text("Resolved by alice")
            await expect(page.locator(".section").last).to_have_text("Resolved in the last minute")

            # The wall screen: larger, no navigation; and back.
            await page.keyboard.press("w")
            await expect(page.locator("html")).to_have_class(_has("wall"))
            await page.screenshot(path=str(SCREENSHOTS / "console-wall.png"), full_page=True)
            await page.keyboard.press("w")
            await expect(page.locator("html")).not_to_have_class(_has("wall"))

            await page.keyboard.press("g")  # back to the top: the alarm; open its device
            await page.keyboard.press("Enter")
            await expect(page.locator(".device-head h1")).to_have_text(caller)
            await expect(page.locator("svg.chart")).to_be_visible()
            await page.screenshot(path=str(SCREENSHOTS / "console-device.png"), full_page=True)
            await page.keyboard.press("2")
            await expect(page.locator(".fleet-screen h1")).to_contain_text("2 devices")
            await page.screenshot(path=str(SCREENSHOTS / "console-fleet.png"), full_page=True)
            await page.keyboard.press("3")
            await expect(page.locator(".migration-screen h1")).to_contain_text("Switchover")
            await page.screenshot(path=str(SCREENSHOTS / "console-migration.png"), full_page=True)
            await page.keyboard.press("Escape")
            await expect(page.locator(".queue-screen")).to_be_visible()
            assert errors == []

        alert = await _alert_of(admin, silent)
        assert (alert["state"], alert["acknowledged_by"], alert["resolved_by"]) == (
            "resolved",
            "alice",
            "alice",
        )
        assert [h["note"] for h in alert["history"][-2:]] == [
            "calling the resident's daughter",
            "resident fine, hub power cycled",
        ]


def _has(name: str) -> re.Pattern[str]:
    """A class attribute that includes `name`."""
    return re.compile(rf"(^|\s){name}(\s|$)")


async def _alert_of(admin: httpx.AsyncClient, device_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        items = (await admin.get("/alerts", params={"device_id": device_id})).json()["items"]
        return items[0] if items else None

    return await wait_for(found, what="the alert")


async def test_the_queue_order_and_the_stream_parser_in_the_browser(service: Service) -> None:
    """The console's own modules, run by Chromium: priority order and SSE framing."""
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{service.api_url}/")
        result = await page.evaluate(
            """async () => {
              const { ordered } = await import("/console/js/priority.js");
              const { FrameParser } = await import("/console/js/stream.js");
              const at = (s) => new Date(Date.UTC(2026, 0, 1, 10, 0, s)).toISOString();
              const alarm = (id, severity, s, state = "open") =>
                ({ kind: "alarm", item: { id, severity, state, received_at: at(s) } });
              const alert = (id, severity, s, state = "open") =>
                ({ kind: "alert", item: { id, severity, state, raised_at: at(s) } });
              const queue = ordered([
                alert(1, "critical", 0), alarm(2, "low", 0), alarm(3, "critical", 30),
                alarm(4, "high", 0), alarm(5, "critical", 10), alert(6, "high", 0),
                alarm(7, "critical", 0, "acknowledged"), alert(8, "medium", 0),
              ]);
              const frames = [];
              const parser = new FrameParser((f) => frames.push(f));
              parser.push("retry: 3000\\nid: 7\\nevent: hello\\ndata: {\\"a\\"");
              parser.push(":1}\\n\\n: keep-alive\\n\\n");
              parser.push("id: 8\\r\\nevent: alert\\r\\ndata: {}\\r\\n\\r\\n");
              return { order: queue.map((e) => `${e.kind}${e.item.id}`), frames };
            }"""
        )
    assert result["order"] == [
        "alarm5",  # life-safety alarms first, longest waiting first
        "alarm3",
        "alarm4",  # then other alarms asking for help
        "alert1",  # then critical alerts, high, medium
        "alert6",
        "alert8",
        "alarm2",  # technical alarms last among the waiting
        "alarm7",  # in hand after everything waiting
    ]
    assert result["frames"] == [
        {"retry": 3000},
        {"id": "7", "event": "hello", "data": '{"a":1}'},
        {"comment": "keep-alive"},
        {"id": "8", "event": "alert", "data": "{}"},
    ]


async def test_a_technician_sees_a_devices_certificate_and_its_expiry_alert(
    certificate_service: Service, tmp_path: Path
) -> None:
    """The device page's identity card, and `certificate_expiring` named in the queue."""
    service = certificate_service
    token = await create_token(service.pool, role=Role.TECHNICIAN, name="alice")
    async with await api_client(service, Role.ADMIN) as admin:
        device = await Devices(admin).register()
    device_id, serial = device["device_id"], device["certificate"]["serial"]
    async with service.pool.connection() as conn:
        await conn.execute(
            "UPDATE device_certificates SET not_after = now() + interval '5 days'"
            " WHERE device_id = %s",
            [device_id],
        )
    await look_at_expiry(service.pool, datetime.now(UTC))

    async with chromium() as browser:
        page = await browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
        errors = page_errors(page)
        await _sign_in(page, service, token)
        row = page.locator(".row", has_text=device_id)
        await expect(row).to_contain_text("Certificate expiring", timeout=10_000)
        await expect(row).to_contain_text(f"certificate {serial} expires")
        await page.goto(f"{service.api_url}/#/device/{device_id}")
        card = page.locator(".card", has_text="Identity")
        await expect(card).to_contain_text(f"{serial} (Active)", timeout=10_000)
        await expect(card).to_contain_text("in 4 days")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "device-identity.png"), full_page=True)
        assert errors == []
