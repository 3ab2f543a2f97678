"""The explorer page, through a real chromium on a real ``kvruntime serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.kvruntime.cli.conftest import APP, KVRUNTIME, fill

from .conftest import Explorer, start_serve


def _follow(page: Any, link: str) -> None:
    """Click ``link`` and wait for the page it leads to (a bare click returns
    before the next page is there: its keys could be read from neither)."""
    with page.expect_navigation():
        page.click(link)


def test_browse_search_page_and_open_a_binary_value(explorer: Explorer, browser: Any) -> None:
    page = browser.new_page()
    page.goto(explorer.url + "/")
    assert page.locator("#dbs").inner_text().count(APP) == 2
    _follow(page, "text=many")
    page.fill("input[name=prefix]", "user:11")
    _follow(page, "#search button")
    keys = page.locator("td.key").all_inner_texts()
    assert keys == [f"user:11{i}" for i in range(10)]
    page.goto(explorer.url + f"/db/{APP}/many")
    first = page.locator("td.key").all_inner_texts()
    _follow(page, "#next")
    second = page.locator("td.key").all_inner_texts()
    assert first == [f"user:{i:03d}" for i in range(50)]
    assert second == [f"user:{i:03d}" for i in range(50, 100)]
    page.goto(explorer.url + f"/db/{APP}/notes")
    _follow(page, "text=blob")
    assert page.locator("#shown").inner_text() == "0x00ff10c3"
    _follow(page, "a.view:text('hex')")
    assert page.locator("#shown").inner_text() == "00ff10c3"
    _follow(page, "a.view:text('msgpack')")
    assert "not MessagePack" in page.locator("#shown").inner_text()


def _keys(page: Any) -> list[str]:
    keys: list[str] = page.locator("td.key").all_inner_texts()
    return keys


def _users(numbers: range) -> list[str]:
    return [f"user:{i:03d}" for i in numbers]


def test_pages_go_back_with_the_previous_link(explorer: Explorer, browser: Any) -> None:
    page = browser.new_page()
    page.goto(explorer.url + f"/db/{APP}/many")
    assert page.locator("#prev").count() == 0  # the first page has none
    _follow(page, "#next")
    _follow(page, "#next")
    assert _keys(page) == _users(range(100, 120))
    assert page.locator("#next").count() == 0
    _follow(page, "#prev")
    assert _keys(page) == _users(range(50, 100))
    _follow(page, "#next")  # forward again from a page reached backwards
    assert _keys(page) == _users(range(100, 120))
    _follow(page, "#prev")
    _follow(page, "#prev")
    assert _keys(page) == _users(range(50))
    assert page.locator("#prev").count() == 0
    # in reverse order and within a prefix, as the search form asks
    page.goto(explorer.url + f"/db/{APP}/many?prefix=user:0&reverse=1")
    assert _keys(page) == _users(range(99, 49, -1))
    _follow(page, "#next")
    assert _keys(page) == _users(range(49, -1, -1))
    _follow(page, "#prev")
    assert _keys(page) == _users(range(99, 49, -1))
    assert page.locator("#prev").count() == 0


def test_a_hostile_key_renders_inert(explorer: Explorer, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(explorer.url + f"/db/{APP}/notes")
    assert page.title() != "pwned"
    assert "<script>document.title='pwned'</script>" in page.locator("td.key").all_inner_texts()
    # The README's picture: KVRUNTIME_SCREENSHOT=docs/explorer.png refreshes it.
    shot = Path(os.environ.get("KVRUNTIME_SCREENSHOT") or tmp_path / "explorer.png")
    page.set_viewport_size({"width": 1000, "height": 520})
    page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_set_and_delete_with_the_token_refused_without(explorer: Explorer, browser: Any) -> None:
    page = browser.new_page()
    page.goto(explorer.url + f"/db/{APP}/notes")
    page.fill("#set input[name=key]", "new-key")
    page.fill("#set input[name=value]", "new value")
    page.click("#set button")
    assert "refused" in page.locator("#error").inner_text()
    page.goto(explorer.url + f"/db/{APP}/notes#token={explorer.token}")
    page.fill("#set input[name=key]", "new-key")
    page.fill("#set input[name=value]", "new value")
    page.click("#set button")
    row = page.locator("tr", has=page.locator("td.key", has_text="new-key"))
    assert row.locator("td.value").inner_text() == "new value"
    row.locator("button:text('delete')").click()
    assert "new-key" not in page.locator("td.key").all_inner_texts()
    assert "hello" in page.locator("td.key").all_inner_texts()


def _post(explorer: Explorer, path: str, form: dict[str, str], headers: dict[str, str]) -> int:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(explorer.url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_cross_site_write_is_refused_even_with_the_token(explorer: Explorer) -> None:
    form = {"key": "x", "value": "y", "token": explorer.token}
    path = f"/db/{APP}/notes/set"
    assert _post(explorer, path, form, {"Origin": "http://evil.example"}) == 403
    assert _post(explorer, path, form, {"Sec-Fetch-Site": "cross-site"}) == 403
    assert _post(explorer, path, form | {"token": "wrong"}, {}) == 403
    assert _post(explorer, path, form, {"Origin": explorer.url}) == 200  # after the redirect
    token_file = explorer.home / "explorer-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token_file.read_text().strip() == explorer.token


def test_an_unknown_host_header_is_refused(explorer: Explorer) -> None:
    request = urllib.request.Request(explorer.url + "/", headers={"Host": "evil.example"})
    try:
        urllib.request.urlopen(request)
        status = 200
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 421


def test_ctrl_c_stops_it_with_130_and_takes_the_grants_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    fill(home, "notes", [(b"hello", b"world")])
    proc, url, _ = start_serve(home)
    try:
        with urllib.request.urlopen(f"{url}/db/{APP}/notes", timeout=20) as response:
            assert b"hello" in response.read()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert not (home / "explorer-token").exists()
    caps = subprocess.run(
        [KVRUNTIME, "caps", "--home", str(home), "--json"], capture_output=True, check=True
    )
    assert b"kvruntime-cli" not in caps.stdout
    assert f"writer:{APP}".encode() in caps.stdout  # the application's own grants stay
