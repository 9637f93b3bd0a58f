"""The webhook tests print their figures (`webhooks[<what>]: ...`), repeated in the
terminal summary as the limits figures are."""

from tests.support.figures import Figures

_figures = Figures("webhooks[", "webhook figures")
pytest_runtest_logreport = _figures.pytest_runtest_logreport
pytest_terminal_summary = _figures.pytest_terminal_summary
