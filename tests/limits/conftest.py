"""The limits tests print their figures (`limits[<attack>]: ...`); they are repeated in the
terminal summary, as the fault figures are."""

from tests.support.figures import Figures

_figures = Figures("limits[", "limits figures")
pytest_runtest_logreport = _figures.pytest_runtest_logreport
pytest_terminal_summary = _figures.pytest_terminal_summary
