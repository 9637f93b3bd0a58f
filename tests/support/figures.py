"""Lines a test prints with a known prefix, repeated in the terminal summary at the end
of the session, passed or not: a conftest binds its two hooks to one Figures."""

from __future__ import annotations


class Figures:
    def __init__(self, prefix: str, title: str) -> None:
        self.prefix = prefix
        self.title = title
        self.shown: list[str] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call":
            lines = report.capstdout.splitlines()
            self.shown.extend(line for line in lines if line.startswith(self.prefix))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.shown:
            terminalreporter.section(self.title)
            for line in self.shown:
                terminalreporter.write_line(line)
