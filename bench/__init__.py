"""`make bench`: each figure of the system beside its raw floor, measured in the same run.

These machines are shared and noisy: a ratio to a floor measured moments before is
stable, an absolute time is not. Not part of `make test`; nothing here asserts a timing.
"""
