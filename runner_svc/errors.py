"""The runner's errors: one base, a few leaves. Each says who raises it and what the
catcher does with it."""

from __future__ import annotations


class RunnerError(Exception):
    """Base of every error the runner raises on purpose."""


class UnknownRunnerType(RunnerError):
    """Raised by executors.create_executor for a BOB_RUNNER_TYPE without an executor;
    the cli reports it and exits with RET_CONFIG."""


class ExecutorMisconfigured(RunnerError):
    """Raised when building an executor that cannot work safely as configured (a shell
    runner that could only run steps as root or as itself); the cli reports it and exits
    with RET_CONFIG."""


class ExecutorUnavailable(RunnerError):
    """Raised by Executor.start when its backend (e.g. the Docker engine) cannot be
    reached; the service retries with backoff."""


class PrepareFailed(RunnerError):
    """Raised by an executor when a run cannot get its workspace (image unavailable,
    container not startable). The run fails with str(exc) as its reason."""


class StepFailed(RunnerError):
    """Raised by a workspace when a step could not be executed at all (as opposed to a
    step that ran and exited non-zero). The run fails with str(exc) as its reason."""


class EntitiesUnavailable(RunnerError):
    """Raised by RunClaims when the entities service cannot answer now. The consumer hands
    an unclaimed job back (nack with requeue) after a delay, so it is not lost; lease
    renewal and the orphan sweep try again at their next turn."""


class EntitiesRefused(RunnerError):
    """Raised by RunClaims when entities answered with a definite error (e.g. the runner
    does not own the run it releases). The caller logs it and leaves that run alone."""

    def __init__(self, code: object, message: str) -> None:
        super().__init__(message)
        # The grpc.StatusCode entities answered with.
        self.code = code


class EventsUnavailable(RunnerError):
    """Raised by RunReporter when an event could not be published before its deadline.
    The run cannot report, so the consumer gives the job up and reports the error."""


class TransferFailed(RunnerError):
    """Raised while placing a resource in a workspace or uploading an artifact from it
    (plugin unknown or unreachable, HTTP error, path missing). The run fails with
    str(exc) as its reason."""


class ArchiveRejected(TransferFailed):
    """Raised by tarsafe for an archive that is unsafe, unreadable or over the size
    limit; nothing of the offending entry has been written. The run fails."""
