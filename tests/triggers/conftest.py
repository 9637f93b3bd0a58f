"""The triggers tests print their figures (`webhooks[<what>]: ...` and, for schedules and
notifications, `triggers[<what>]: ...`), repeated in the terminal summary as the limits
figures are."""

from tests.support.figures import Figures

_figures = (
    Figures("webhooks[", "webhook figures"),
    Figures("triggers[", "schedule and notification figures"),
)


def pytest_runtest_logreport(report) -> None:
    for figures in _figures:
        figures.pytest_runtest_logreport(report)


def pytest_terminal_summary(terminalreporter) -> None:
    for figures in _figures:
        figures.pytest_terminal_summary(terminalreporter)
