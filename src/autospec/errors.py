"""Exceptions that the command line turns into one-line errors."""


class InputError(ValueError):
    """Bad user input (a file, subject, field or argument).

    The message must name the offending file, subject or field; the CLI prints it on one
    line and exits non-zero.
    """
