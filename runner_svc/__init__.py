"""The runner: takes jobs from the queue at its capacity, runs them with the executor of
its runner type, reports every step as events, and obeys the control fanout."""

import os

# gRPC's core, as grpcio builds it, re-initialises itself in the child of every fork()
# of the process, which can abort the child before it execs (a shell step). The runner
# never forks to run Python, so it needs none of that. Set before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
