"""The one error type library code raises; only the CLI turns it into a message and an exit code."""


class HilbertError(Exception):
    """A problem the user can fix: the message names the file or option, what is wrong, and what to do."""
