"""The shell executor (BOB_RUNNER_TYPE=shell): runs on the host, for hosts without Docker."""
