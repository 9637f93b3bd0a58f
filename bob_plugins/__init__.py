"""Reference plugins that follow Bob's HTTP contracts, so Bob's own plugins can replace
them: `resource_git` (a resource provider serving a tar of a git repository at a ref),
`artifact_local` (an artifact store keeping artifacts on disk) and `logger_local` (a
logger keeping a copy of each run's log on disk). Each is a small Starlette app, run with
`python -m bob_plugins.<name>`, listening on 127.0.0.1 only."""
