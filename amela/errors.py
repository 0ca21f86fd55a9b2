"""Distinct exceptions, so callers can tell a bad configuration from a failed submission or a failed item; and
Failure, what an item's failure looks like once caught (worker, pool and runner all speak it)."""
from __future__ import annotations

from dataclasses import dataclass


class AmelaError(Exception):
    """Base of every error AMELA raises on purpose."""


class ConfigError(AmelaError):
    """Bad usage or configuration: the CLI exits 2."""


class ManifestError(ConfigError):
    """An input manifest (or directory) cannot be used; carries the problems, one `file:line: problem` each."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []


class RunLockedError(ConfigError):
    """Another process holds the run directory."""


class UnknownShardError(ConfigError):
    """A shard the run's plan does not have (index out of range), or whose directory is gone: the CLI exits 2."""


class IncompleteRunError(AmelaError):
    """merge without --allow-partial while shards are missing."""

    def __init__(self, message: str, missing: list[int]):
        super().__init__(message)
        self.missing = missing


class SubmissionError(AmelaError):
    """A scheduler refused or failed to take a job."""


class ItemError(AmelaError):
    """One item failed; a stage raises (or returns) it to name the item's problem in failures.jsonl."""


class StageUnavailableError(AmelaError):
    """A stage's native or optional dependency is missing; the message says how to fix it."""


@dataclass
class Failure:
    """An item that failed: what the runner writes to failures.jsonl (besides the record itself)."""

    error_type: str
    message: str
    signal: str | None = None
    traceback: str | None = None
    errno: int | None = None  # of an OSError: a full disk is the run's problem, not the item's

