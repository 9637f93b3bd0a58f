"""The web page's browser test: a cluster in tokens mode with a Docker runner, and Debian's
headless Chromium driven over WebDriver (chromedriver), each with a fresh profile.

Chromium or its driver missing skips the tests with the reason, and fails them under
CI=true (`make setup` installs both), as a missing broker does.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _unavailable
from tests.e2e.runner_cluster import Bob, runner_cluster
from tests.support.figures import Figures

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags that work here as root, with no display and no network besides the API's.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DESKTOP = (1280, 1100)

_figures = Figures("page:", "web page figures")
pytest_runtest_logreport = _figures.pytest_runtest_logreport
pytest_terminal_summary = _figures.pytest_terminal_summary


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    runner_id = f"page-{uuid.uuid4().hex[:8]}"
    with runner_cluster(
        tmp_path_factory.mktemp("cluster"),
        [{"BOB_RUNNER_ID": runner_id}],
        env={"BOB_API_AUTH": "tokens"},
    ) as b:
        yield b


@pytest.fixture
def browser(tmp_path: Path):
    if not (Path(CHROMIUM).exists() and shutil.which(CHROMEDRIVER)):
        _unavailable(f"{CHROMIUM} or {CHROMEDRIVER} is missing (Debian: chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    # The console, so that a test can see what the page's CSP refused.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_window_size(*DESKTOP)
    try:
        yield driver
    finally:
        driver.quit()
