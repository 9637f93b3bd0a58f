"""The web page for runs, in a real browser (headless Chromium) against a running cluster in
tokens mode: what a read token and an operate token see and may do, a run started from the
page with its log followed live to the last line (ANSI colours rendered, markup shown as
text), a long run stopped from the page, the runners, and a phone-width view. Screenshots
go to docs/screenshots/, which the README shows."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from tests.e2e.runner_cluster import Bob, run_detail
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = (390, 844)
LAST = "the-last-line"
# Printed by the build: markup that must show as text, and would set __xss if it ran.
MARKUP = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
EARLY_LINES = 1200


def shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def token(bob: Bob, name: str, role: str) -> str:
    r = bob.http.post("/tokens", json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    return r.json()["message"]["secret"]


def find(driver, css: str):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def texts(driver, css: str) -> list[str]:
    """The text of every element matching css, read in one call (a WebDriver round trip
    per element would take seconds for a long log)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)", css
    )


def wait_css(driver, css: str, timeout: float = 60, what: str | None = None):
    return wait_until(
        lambda: find(driver, css), timeout=timeout, interval=0.2, what=what or f"element {css}"
    )


def badge(driver) -> str | None:
    found = find(driver, "#run-facts .status")
    try:
        return found.get_attribute("data-status") if found else None
    except StaleElementReferenceException:
        return None


def give_token(driver, secret: str) -> None:
    field = wait_css(driver, "#token-form:not([hidden]) #token-input", what="the token form")
    field.send_keys(secret)
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()


def sign_in(driver, bob: Bob, secret: str) -> None:
    """Opens the page, which asks for a token (the API is in tokens mode), and gives it."""
    driver.get(bob.cluster.api_url + "/")
    give_token(driver, secret)
    wait_css(driver, "#who[data-role]", what="the page to know the token's role")
    assert secret not in driver.current_url


def pipeline(bob: Bob, image: str, name: str, steps: list[str]) -> None:
    bob.create_pipeline("page", name, {"image": image, "steps": [{"cmd": c} for c in steps]})


def test_read_token_sees_pipelines_and_runs_without_buttons(bob: Bob, browser, test_image):
    # Given a pipeline with two finished runs, and a read token
    pipeline(bob, test_image, "seen", ["echo seen"])
    first = bob.start("page", "seen")
    assert bob.wait_terminal(first) == "passed"
    run_id = bob.start("page", "seen")
    assert bob.wait_terminal(run_id) == "passed"
    secret = token(bob, "page-reader", "read")

    # When the reader opens the page, mistypes the token, then gives it
    browser.get(bob.cluster.api_url + "/")
    give_token(browser, "bob_" + "x" * 43)
    wait_until(
        lambda: "token was refused" in browser.find_element(By.ID, "notice").text,
        what="the page to say the token was refused",
    )
    assert find(browser, "#pipelines") is None
    give_token(browser, secret)
    wait_css(browser, "#who[data-role]", what="the page to know the token's role")

    # Then the pipeline is listed with its last status, and no start button shows
    row = wait_css(browser, "tr[data-pipeline='page/seen'] .status[data-status=passed]")
    assert row is not None
    assert browser.find_element(By.ID, "who").get_attribute("data-role") == "read"
    assert find(browser, "[data-action=start]") is None
    # and its runs are listed newest first
    browser.find_element(By.LINK_TEXT, "page/seen").click()
    wait_until(
        lambda: (
            [
                r.get_attribute("data-run")
                for r in browser.find_elements(By.CSS_SELECTOR, "#runs tr[data-run]")
            ]
            == [run_id, first]
        ),
        what="the pipeline's runs, newest first",
    )
    # and its last run reads back with its steps, but neither stop nor pause
    browser.get(f"{bob.cluster.api_url}/#/runs/page/seen/{run_id}")
    wait_css(browser, "#run-steps table")
    wait_until(lambda: "seen" in texts(browser, "#log-lines .line"), what="the run's log")
    assert find(browser, "#run-actions button") is None
    # and the token never went into the page's address
    assert secret not in browser.current_url


def test_operate_token_starts_a_run_and_follows_its_log_to_the_last_line(
    bob: Bob, browser, test_image
):
    # Given a pipeline whose log is long, coloured, holds markup, and ends slowly
    pipeline(
        bob,
        test_image,
        "build",
        [
            f"i=1; while [ $i -le {EARLY_LINES} ]; do echo early $i; i=$((i+1)); done",
            "printf '\\033[31mred text\\033[0m plain\\n'; echo '" + MARKUP + "'",
            "printf '\\033[1;32mok\\033[0m compiled \\033[33mwarning: unused\\033[0m\\n'",
            "i=1; while [ $i -le 24 ]; do echo step line $i; sleep 0.5; i=$((i+1)); done; "
            f"echo {LAST}",
        ],
    )
    secret = token(bob, "page-operator", "operate")
    sign_in(browser, bob, secret)
    assert browser.find_element(By.ID, "who").get_attribute("data-role") == "operate"

    # When the operator starts it from the pipelines list
    start = wait_css(browser, "tr[data-pipeline='page/build'] [data-action=start]")
    shot(browser, "pipelines")
    started = time.monotonic()
    start.click()

    # Then the page opens the run and follows its log live to the last line
    wait_until(
        lambda: "/#/runs/page/build/" in browser.current_url, what="the page to open the run"
    )
    run_id = browser.current_url.rsplit("/", 1)[1]
    # (the screenshot of a run with its live log, while it runs)
    wait_until(
        lambda: badge(browser) == "running" and "step line 2" in texts(browser, "#log-lines .line"),
        timeout=120,
        interval=0.2,
        what="the run running, its log live in the page",
        describe=bob.logs_tail,
    )
    shot(browser, "run")
    wait_until(
        lambda: LAST in texts(browser, "#log-lines .line"),
        timeout=120,
        interval=0.2,
        what="the log's last line in the page",
        describe=bob.logs_tail,
    )
    print(f"page: start click to last log line in the page: {time.monotonic() - started:.1f} s")
    assert bob.status(run_id) in {"running", "passed"}
    wait_until(lambda: badge(browser) == "passed", timeout=60, what="the run shown passed")

    # and ANSI colours are rendered (ansi_up's red: rgb(187, 0, 0)), escapes gone
    red = browser.find_element(By.XPATH, "//div[@id='log-lines']//span[text()='red text']")
    assert red.value_of_css_property("color") in {"rgb(187, 0, 0)", "rgba(187, 0, 0, 1)"}
    assert "red text plain" in texts(browser, "#log-lines .line")
    # and markup in a log line is text: shown as printed, never run
    assert MARKUP in texts(browser, "#log-lines .line")
    assert browser.find_elements(By.CSS_SELECTOR, "#log script, #log img") == []
    assert browser.execute_script("return window.__xss === undefined")
    # and the page's CSP had nothing to refuse (colours are set through the CSSOM)
    refused = [
        e["message"] for e in browser.get_log("browser") if "Content Security" in e["message"]
    ]
    assert refused == []

    # When the finished run is opened again, its long log opens at the tail
    browser.get(f"{bob.cluster.api_url}/#/runs/page/build/{run_id}")
    browser.refresh()
    wait_until(lambda: LAST in texts(browser, "#log-lines .line"), what="the log reopened")
    lines = len(browser.find_elements(By.CSS_SELECTOR, "#log-lines .line"))
    assert lines == 1000, lines  # log_view.TAIL of the run's ~1230 lines
    first = find(browser, "#log-lines .line").get_attribute("data-n")
    assert int(first) > 0
    # and earlier lines come on demand, in order
    browser.find_element(By.ID, "log-earlier").click()
    wait_until(
        lambda: "early 1" in texts(browser, "#log-lines .line"), what="the log's first lines"
    )
    numbers = [
        int(e.get_attribute("data-n"))
        for e in browser.find_elements(By.CSS_SELECTOR, "#log-lines .line")
    ]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[0] == 0
    print(f"page: a {numbers[-1] + 1}-line log opened at its last 1000 lines, then from line 0")


def test_operate_token_pauses_resumes_and_stops_a_long_run_from_the_page(
    bob: Bob, browser, test_image
):
    # Given a long run, running
    pipeline(bob, test_image, "long", ["echo long run; sleep 300"])
    run_id = bob.start("page", "long")
    bob.wait_status(run_id, "running", timeout=60)
    # which a read token sees with no buttons
    sign_in(browser, bob, token(bob, "page-looker", "read"))
    browser.get(f"{bob.cluster.api_url}/#/runs/page/long/{run_id}")
    wait_until(lambda: "long run" in texts(browser, "#log-lines .line"), what="the live log")
    wait_until(lambda: badge(browser) == "running", what="the run shown running")
    assert find(browser, "#run-actions button") is None
    # and an operate token, given after the read one is forgotten, sees with its buttons
    browser.find_element(By.ID, "token-button").click()
    wait_css(browser, "#token-forget").click()
    give_token(browser, token(bob, "page-stopper", "operate"))
    wait_css(browser, "#who[data-role=operate]", what="the operate token taken")
    wait_until(lambda: "long run" in texts(browser, "#log-lines .line"), what="the live log")

    # When the operator pauses it, then resumes it, from the page
    wait_css(browser, "[data-action=pause]").click()
    wait_until(lambda: badge(browser) == "paused", timeout=60, what="the run shown paused")
    bob.wait_status(run_id, "paused", timeout=30)
    wait_css(browser, "[data-action=resume]").click()
    wait_until(lambda: badge(browser) == "running", timeout=60, what="the run shown running")

    # and presses Stop
    wait_css(browser, "[data-action=stop]").click()

    # Then the run ends stopped, in the page and in the API
    wait_until(lambda: badge(browser) == "stopped", timeout=90, what="the run shown stopped")
    bob.wait_status(run_id, "stopped", timeout=30)
    assert run_detail(bob, "page", "long", run_id)["reason"]
    assert find(browser, "#run-actions button") is None


def test_a_followed_log_keeps_at_most_the_page_cap_of_lines(bob: Bob, browser, test_image):
    # Given a run whose log outgrows what the page holds (log_view.MAX_LINES: 5000)
    total = 6500
    pipeline(
        bob,
        test_image,
        "flood",
        [f"i=1; while [ $i -le {total} ]; do echo flood $i; i=$((i+1)); done; echo {LAST}"],
    )
    sign_in(browser, bob, token(bob, "page-flood", "read"))
    run_id = bob.start("page", "flood")

    # When the page follows it from its start
    browser.get(f"{bob.cluster.api_url}/#/runs/page/flood/{run_id}")
    wait_until(
        lambda: LAST in texts(browser, "#log-lines .line"),
        timeout=120,
        interval=0.3,
        what="the flood's last line",
    )

    # Then the page holds the newest 5000 lines, numbered on from where they start
    numbers = browser.execute_script(
        "return [...document.querySelectorAll('#log-lines .line')].map((e) => +e.dataset.n)"
    )
    assert len(numbers) == 5000
    assert numbers == list(range(numbers[0], numbers[0] + 5000)) and numbers[0] > 0
    # and it says the earlier ones are left out rather than loading them
    earlier = browser.find_element(By.ID, "log-earlier")
    assert earlier.get_property("disabled") and "earlier lines not shown" in earlier.text
    print(f"page: a {numbers[-1] + 1}-line log followed live, the page holding {len(numbers)}")


def test_runners_and_a_phone_width_view(bob: Bob, browser):
    sign_in(browser, bob, token(bob, "page-watcher", "read"))
    browser.get(f"{bob.cluster.api_url}/#/runners")
    wait_css(browser, f"tr[data-runner='{bob.runner_id}']", what="the cluster's runner")
    shot(browser, "runners")

    browser.set_window_size(*PHONE)
    browser.get(f"{bob.cluster.api_url}/#/")
    wait_css(browser, "#pipelines tbody tr[data-pipeline]", what="the pipelines on a phone")
    # Nothing is wider than the phone's screen: the tables stack.
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    shot(browser, "phone")


def test_page_is_served_with_its_security_headers(bob: Bob):
    # Open: no token needed for the page's files (they hold no data)
    for path in ("/", "/web/app.js", "/web/vendor/ansi_up.js"):
        r = httpx.get(bob.cluster.api_url + path)
        assert r.status_code == 200, (path, r.text)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        again = httpx.get(bob.cluster.api_url + path, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
    # Swagger UI is where it was
    assert bob.http.get("/ui/").status_code == 200
    # A browser's same-origin POST (Origin = the API's own) passes the guard
    origin = bob.cluster.api_url
    r = bob.http.post(
        "/pipelines/start/groups/page/names/nope",
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 404, r.text
