"""User-facing errors.

Anything the user can fix (a bad path, a corrupt data set, a wrong option) raises
:class:`GanforgeError`. The command line prints its message as one line and exits
with code 2; tracebacks are for bugs only.
"""


class GanforgeError(Exception):
    """An error caused by user input; its message is shown as one line."""


class DataError(GanforgeError):
    """The data set cannot be read or used as asked."""


class ConfigError(GanforgeError):
    """The configuration is invalid (unknown key, bad value)."""
