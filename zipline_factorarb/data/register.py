"""Register the project's bundles with zipline.

zipline finds bundles only through ``$ZIPLINE_ROOT/extension.py`` or
``zipline -e FILE``; ``factorarb install-extension`` writes the former, and
``bundles/extension.py`` in the repository is the latter. Both call
:func:`register_bundles`.
"""

from __future__ import annotations

SAMPLE_BUNDLE = "factorarb-sample"
CSV_BUNDLE = "factorarb-csv"
CSV_DIR_ENV = "FACTORARB_CSV_DIR"
CSV_OHLC_ENV = "FACTORARB_CSV_OHLC"
CALENDAR = "XNYS"

#: Names of the bundles this package registers (for ``factorarb bundles``).
REGISTERED = {}


def _load_sample(environ):
    from .sources import load_sample

    return load_sample()


def register_sample_bundle(name=SAMPLE_BUNDLE):
    """Register the embedded sample (skfolio's datasets; no network)."""
    from zipline.data.bundles import register

    from .writer import make_ingest

    register(name, make_ingest(_load_sample, describe=name), calendar_name=CALENDAR)
    REGISTERED[name] = "embedded sample: 20 US large caps 1990-2022, S&P 500 index, 5 factor ETFs"
    return name


def register_csv_bundle(name=CSV_BUNDLE, directory=None, ohlc=None):
    """Register a bundle that ingests the user's CSV / Parquet files.

    Parameters
    ----------
    name : str
        Bundle name for ``zipline ingest -b`` / ``zipline run -b``.
    directory : str or path, optional
        Folder of price files (see :func:`~.sources.load_directory` for the
        layout). Read at ingest time; when omitted, ``$FACTORARB_CSV_DIR``.
    ohlc : {'raise', 'repair'}, optional
        Rows with open/close outside [low, high]: raise (default) or widen
        high/low and report; when omitted, ``$FACTORARB_CSV_OHLC`` or 'raise'.

    Examples
    --------
    In ``~/.zipline/extension.py``::

        from zipline_factorarb import register_csv_bundle
        register_csv_bundle("my-etfs", "~/data/etfs")
    """
    from zipline.data.bundles import register

    from .errors import BundleDataError
    from .sources import load_directory
    from .writer import make_ingest

    def load(environ):
        folder = directory or environ.get(CSV_DIR_ENV)
        if not folder:
            raise BundleDataError(
                f"bundle {name!r} has no price folder: set {CSV_DIR_ENV} or register it "
                "with register_csv_bundle(name, directory)"
            )
        return load_directory(folder)

    if ohlc not in (None, "raise", "repair"):
        raise ValueError(f"ohlc must be 'raise' or 'repair', got {ohlc!r}")

    def ingest(environ, *rest):
        # the mode is read at ingest time, from the environment of `zipline ingest`
        mode = ohlc or environ.get(CSV_OHLC_ENV, "raise")
        return make_ingest(load, ohlc=mode, describe=name)(environ, *rest)

    register(name, ingest, calendar_name=CALENDAR)
    REGISTERED[name] = f"user CSV/Parquet files from {directory or '$' + CSV_DIR_ENV}"
    return name


def register_bundles():
    """Register ``factorarb-sample`` and ``factorarb-csv``; safe to call twice."""
    from zipline.data.bundles import bundles

    if SAMPLE_BUNDLE not in bundles:
        register_sample_bundle()
    if CSV_BUNDLE not in bundles:
        register_csv_bundle()
    return [SAMPLE_BUNDLE, CSV_BUNDLE]
