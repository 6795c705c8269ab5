"""The project's error types; each carries a one-line message for the user and an exit code."""


class AtlasError(Exception):
    """A problem the user can fix; the CLI prints the message on one line and exits with `exit_code`."""

    exit_code = 1


class ConfigError(AtlasError):
    """A setting in the config file or on the command line is wrong."""

    exit_code = 2


class DataError(AtlasError):
    """A dataset file is missing, truncated, altered or not in IDX format."""

    exit_code = 3


class TrainingError(AtlasError):
    """Training diverged (NaN or Inf); nothing was written."""

    exit_code = 4


class BuildError(AtlasError):
    """A stage could not write or build its output (analysis, rendering, mkdocs; a numba cache of the kernels
    that can be neither read nor removed); earlier outputs are untouched."""

    exit_code = 5


class WeightsError(AtlasError):
    """An imported weights file is unreadable, malformed or does not fit the data."""

    exit_code = 6


def caused_by_interrupt(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in the exception's chain. Ctrl-C that lands while a numba-compiled
    function returns makes the dispatcher raise SystemError("... returned a result with an exception set")
    with the KeyboardInterrupt as its context."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
