"""The deploy tests print their counts (`deploy[<scenario>]: ...`); they are repeated in
the terminal summary, as the fault and limits figures are."""

from tests.support.figures import Figures

_figures = Figures("deploy[", "deploy figures")
pytest_runtest_logreport = _figures.pytest_runtest_logreport
pytest_terminal_summary = _figures.pytest_terminal_summary
