"""Errors raised while reading and validating bundle input."""


class BundleDataError(ValueError):
    """Bad bundle input, with the file, symbol, row and date at fault.

    Attributes
    ----------
    file, symbol, row, date : str, str, int, str or None
        Where the problem is. ``row`` is the 1-based line number in the file
        (the header is line 1), so it can be opened in an editor directly.
    """

    def __init__(self, message, *, file=None, symbol=None, row=None, date=None):
        self.file = file
        self.symbol = symbol
        self.row = row
        self.date = date
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"line {row}")
        if symbol is not None:
            where.append(f"symbol {symbol}")
        if date is not None:
            where.append(f"date {date}")
        self.message = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
