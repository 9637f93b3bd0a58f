"""The entities service: the only owner of the database.

It serves the bob.v1.Entities gRPC service (pipelines, plugins, runs, logs) and applies
the run events that runners publish on bob.events, each exactly once and in order.
"""
