"""The error the CLI turns into a one-line message and exit code 2: bad input, not a bug."""


class UserError(Exception):
    """Something the user gave (a file, a flag, a dataset root) is wrong; the message says
    what and what would be valid."""
