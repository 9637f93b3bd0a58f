"""The service-identity matrix (`identity matrix: ...`, test_identity.py) is repeated in
the terminal summary, beside the token-role matrix (test_roles_matrix.py)."""

from tests.support.figures import Figures

_figures = Figures("identity matrix:", "service-identity matrix")
pytest_runtest_logreport = _figures.pytest_runtest_logreport
pytest_terminal_summary = _figures.pytest_terminal_summary
