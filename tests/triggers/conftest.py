"""The triggers tests print their figures (`triggers[<what>]: ...`); they are repeated in
the terminal summary, as the limits figures are."""

from tests.support.figures import Figures

_figures = Figures("triggers[", "triggers figures")
pytest_runtest_logreport = _figures.pytest_runtest_logreport
pytest_terminal_summary = _figures.pytest_terminal_summary
