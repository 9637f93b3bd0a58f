"""The Docker executor (BOB_RUNNER_TYPE=docker, the default): one container per run, the
steps as execs in it, the last one run by the container's own entry. Everything here
imports the docker SDK, except entry.py (the container's pid 1, as text)."""
