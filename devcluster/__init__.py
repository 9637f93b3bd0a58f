"""Developer tooling: code generation, the local test image, and a local cluster.

Not used by the services themselves; `make run`, `make gen` and the tests use it.
"""
