"""The limits tests print their figures (`limits[<attack>]: ...`); they are repeated in the
terminal summary at the end of the session, passed or not, as the fault figures are."""

from __future__ import annotations

PREFIX = "limits["
SHOWN: list[str] = []


def pytest_runtest_logreport(report) -> None:
    if report.when == "call":
        SHOWN.extend(line for line in report.capstdout.splitlines() if line.startswith(PREFIX))


def pytest_terminal_summary(terminalreporter) -> None:
    if SHOWN:
        terminalreporter.section("limits figures")
        for line in SHOWN:
            terminalreporter.write_line(line)
