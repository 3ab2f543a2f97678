"""The db page's live changes: Server-Sent Events from a real ``kvruntime serve``, seen in
a real chromium. Writes come from outside the page (POSTs with the token, as a script would);
the node's open watches are read from its ``/metrics`` (``kvruntime_watches``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from prometheus_client.parser import text_string_to_metric_families

from tests.kvruntime.cli.conftest import APP, KVRUNTIME, fill

from .conftest import Explorer, start_serve

#: Seconds any one wait may take.
BOUND = 20
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def _set(explorer: Explorer, key: str, value: str) -> None:
    form = urllib.parse.urlencode({"key": key, "value": value, "token": explorer.token})
    request = urllib.request.Request(
        f"{explorer.url}/db/{APP}/notes/set", data=form.encode(), method="POST"
    )
    urllib.request.urlopen(request, timeout=10).close()


def _delete(explorer: Explorer, key: str) -> None:
    form = urllib.parse.urlencode({"key_hex": key.encode().hex(), "token": explorer.token})
    request = urllib.request.Request(
        f"{explorer.url}/db/{APP}/notes/delete", data=form.encode(), method="POST"
    )
    urllib.request.urlopen(request, timeout=10).close()


def _open_watches(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "kvruntime_watches":
                return float(sample.value)
    raise AssertionError("no kvruntime_watches in /metrics")


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


def _live_page(explorer: Explorer, browser: Any, query: str = "") -> Any:
    page = browser.new_page()
    page.goto(f"{explorer.url}/db/{APP}/notes{query}")
    # (a locator, not wait_for_function: the page's CSP forbids the eval that one may use)
    expect(page.locator("#live-status")).to_have_text("live", timeout=BOUND * 1000)
    return page


def _panel_keys(page: Any) -> list[str]:
    keys: list[str] = page.locator("#changes td.key").all_inner_texts()
    return keys


def test_a_change_made_outside_appears_without_reload_and_a_hostile_key_is_text(
    explorer: Explorer, browser: Any
) -> None:
    page = _live_page(explorer, browser)
    page.evaluate("() => { window.notReloaded = true; }")
    _set(explorer, "fresh", "first value")
    _set(explorer, HOSTILE, "evil")
    _delete(explorer, "fresh")
    _wait_for(lambda: len(page.locator("#changes tr.change").all()) == 3, "three changes")
    assert page.evaluate("() => window.notReloaded") is True  # no reload: the same document
    kinds = page.locator("#changes tr.change td:nth-child(2)").all_inner_texts()
    assert kinds == ["delete", "set", "set"]  # the newest first
    assert _panel_keys(page) == ["fresh", HOSTILE, "fresh"]
    assert page.locator("#changes td.value").all_inner_texts() == ["", "evil", "first value"]
    assert page.locator("#changes img").count() == 0  # text, not markup
    assert page.title() != "pwned"


def test_the_panel_follows_the_pages_prefix_filter(explorer: Explorer, browser: Any) -> None:
    page = _live_page(explorer, browser, "?prefix=user%3A")
    _set(explorer, "other", "x")
    _set(explorer, "user:1", "one")
    _wait_for(lambda: _panel_keys(page) == ["user:1"], "user:1 in the panel")
    assert "other" not in _panel_keys(page)  # logged before user:1, and filtered out


def test_leaving_the_page_ends_its_watch(explorer: Explorer, browser: Any) -> None:
    assert _open_watches(explorer.url) == 0
    page = _live_page(explorer, browser)
    other = _live_page(explorer, browser, "?prefix=a")
    assert _open_watches(explorer.url) == 2
    page.goto("about:blank")
    _wait_for(lambda: _open_watches(explorer.url) == 1, "the first page's watch ending")
    other.close()
    _wait_for(lambda: _open_watches(explorer.url) == 0, "the second page's watch ending")
    # the pages' other requests went on meanwhile: a stream holds no lock
    with urllib.request.urlopen(f"{explorer.url}/db/{APP}/notes", timeout=10) as response:
        assert b"hello" in response.read()


def test_stopping_the_server_ends_an_open_stream_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    fill(home, "notes", [(b"hello", b"world")])
    proc, url, _ = start_serve(home)
    try:
        with urllib.request.urlopen(f"{url}/db/{APP}/notes/changes", timeout=BOUND) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert stream.readline() == b"event: ready\n"
            os.kill(proc.pid, signal.SIGTERM)
            rest = stream.read()  # the stream ends (EOF) once the server stops it
        _, err = proc.communicate(timeout=BOUND)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert rest.startswith(b"data: ")
    assert "Traceback" not in err
    caps = subprocess.run(
        [KVRUNTIME, "caps", "--home", str(home), "--json"], capture_output=True, check=True
    )
    assert b"kvruntime-cli" not in caps.stdout  # the stream's process took its grants back too
