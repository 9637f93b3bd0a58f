"""What the API server, the entities service and the runners share: configuration,
the queue topology and message codec, and logging set-up."""
