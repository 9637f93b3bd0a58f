"""The service-identity matrix each security run prints (`identity matrix: ...`) is
repeated in the terminal summary at the end of the session, beside the token-role
matrix (test_roles_matrix.py)."""

from __future__ import annotations

PREFIX = "identity matrix:"
SHOWN: list[str] = []


def pytest_runtest_logreport(report) -> None:
    if report.when == "call":
        SHOWN.extend(line for line in report.capstdout.splitlines() if line.startswith(PREFIX))


def pytest_terminal_summary(terminalreporter) -> None:
    if SHOWN:
        terminalreporter.section("service-identity matrix")
        for line in SHOWN:
            terminalreporter.write_line(line)
