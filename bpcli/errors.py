"""bp's domain errors. Each says what was wrong, where, and what to do about it."""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

#: Problems listed at most in one message; the rest are counted.
MAX_LISTED = 20


class BpError(Exception):
    """Base of every error bp reports to the user as a message rather than a traceback."""

    exit_code = EXIT_BAD_INPUT

    def lines(self) -> list[str]:
        """The message as one or more self-contained lines."""
        return [str(self)]


class ConfigError(BpError):
    """One or more problems in a config file, each already located as ``file:line:col``."""

    def __init__(self, problems: list[str], path: str, omitted: int = 0) -> None:
        self.problems = problems
        self.path = path
        self.omitted = omitted  # further problems found but not listed
        super().__init__("\n".join(problems))

    def lines(self) -> list[str]:
        total = len(self.problems) + self.omitted
        if total == 1:
            return self.problems
        listed = self.problems[:MAX_LISTED]
        shown = f" (the first {len(listed)} shown)" if total > len(listed) else ""
        return [*listed, f"{total} problems in {self.path}{shown}; fix them and run again"]


class DataError(BpError):
    """A data file that cannot be used as it is."""


class ModelFileError(BpError):
    """A model or checkpoint file that cannot be loaded."""


class UsageError(BpError):
    """Command-line arguments that do not make sense together."""


class CheckFailed(BpError):
    """A check ran and found a fault (gradient mismatch, diverged training)."""

    exit_code = EXIT_CHECK_FAILED


class DataProblems(DataError):
    """Every problem found in the data of one run, each a self-contained line (the
    counterpart of ``ConfigError``: fix them all in one go rather than one per run)."""

    def __init__(self, problems: list[str], where: str, warnings: list[str] | None = None
                 ) -> None:
        self.problems = problems
        self.where = where
        self.warnings = warnings or []  # worth fixing in the same pass, but not blocking
        super().__init__("\n".join(problems))

    def lines(self) -> list[str]:
        if len(self.problems) == 1 and not self.warnings:
            return self.problems
        return [*self.problems, *self.warnings, f"{len(self.problems)} problem"
                f"{'s' if len(self.problems) > 1 else ''} in {self.where}; fix "
                f"{'them' if len(self.problems) > 1 else 'it'} and run again"]
