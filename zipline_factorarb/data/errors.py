"""Errors raised while reading and validating bundle input."""

import os
import sys
import traceback

import click

#: Set to 1 to print the Python traceback of a bundle data error on the
#: command line (by default only the message is printed).
TRACEBACK_ENV = "FACTORARB_TRACEBACK"


class BundleDataError(click.ClickException, ValueError):
    """Bad bundle input, with the file, symbol, row and date at fault.

    It is a ``ValueError`` for Python callers and a ``click.ClickException``
    for the command line: ``zipline ingest`` prints ``Error: <message>``
    alone and exits with status 1. With ``FACTORARB_TRACEBACK=1`` in the
    environment the traceback is printed before the message.

    Attributes
    ----------
    file, symbol, row, date : str, str, int, str or None
        Where the problem is. ``row`` is the 1-based line number in the file
        (the header is line 1), so it can be opened in an editor directly.
    reason : str
        The problem without its place.
    message : str
        The full message (place and problem), also ``str(error)``.
    """

    exit_code = 1

    def __init__(self, message, *, file=None, symbol=None, row=None, date=None):
        self.file = file
        self.symbol = symbol
        self.row = row
        self.date = date
        where = [f"{what} {value}" for what, value in
                 (("file", file), ("line", row), ("symbol", symbol), ("date", date))
                 if value is not None]
        self.reason = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    def show(self, file=None):
        """Print the message (and the traceback when asked) to stderr."""
        if os.environ.get(TRACEBACK_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
            traceback.print_exception(type(self), self, self.__traceback__,
                                      file=file or sys.stderr)
        super().show(file)
