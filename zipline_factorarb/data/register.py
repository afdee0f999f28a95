"""Register the project's bundles with zipline, and load the user's extensions.

zipline finds bundles only through ``$ZIPLINE_ROOT/extension.py`` or
``zipline -e FILE``; ``factorarb install-extension`` writes the former, and
``bundles/extension.py`` in the repository is the latter. Both call
:func:`register_bundles`. Every ``factorarb`` command and the research helpers
call :func:`load_user_extensions`, so a bundle the user registers in
``$ZIPLINE_ROOT/extension.py`` is found there exactly as by ``zipline run``.
"""

from __future__ import annotations

import os

from ..checks import check_choice

SAMPLE_BUNDLE = "factorarb-sample"
CSV_BUNDLE = "factorarb-csv"
CSV_DIR_ENV = "FACTORARB_CSV_DIR"
CSV_OHLC_ENV = "FACTORARB_CSV_OHLC"
CSV_ADJUSTMENTS_ENV = "FACTORARB_CSV_ADJUSTMENTS"
#: Default trading calendar of the bundles (exchange_calendars name).
CALENDAR = "XNYS"

#: Names of the bundles registered through this module (for ``factorarb bundles``).
REGISTERED = {}


def load_user_extensions(extensions=(), environ=None, strict=True):
    """Register our bundles, then load the user's zipline extensions.

    Loads ``$ZIPLINE_ROOT/extension.py`` when it exists, then each of
    ``extensions`` (a ``.py`` file is executed, anything else imported as a
    module), with zipline's own
    :func:`zipline.utils.run_algo.load_extensions`, the function behind
    ``zipline -e``. zipline loads each file once per process.

    Parameters
    ----------
    extensions : sequence of str, optional
        Extension files or modules, as given to ``zipline -e``.
    environ : mapping, optional
        Environment that names ``ZIPLINE_ROOT`` (default ``os.environ``).
    strict : bool, default True
        Raise the error of an extension that fails to load (as ``zipline
        --strict-extensions``); False only warns.
    """
    from zipline.utils.paths import default_extension
    from zipline.utils.run_algo import load_extensions

    environ = os.environ if environ is None else environ
    register_bundles()
    default = os.path.isfile(default_extension(environ=environ))
    load_extensions(default, [str(e) for e in extensions], strict, environ)


def country_code_of(calendar_name):
    """ISO 3166 country code of an exchange_calendars calendar, or None.

    Taken from zipline's built-in pipeline domains (``XNYS`` -> ``US``,
    ``XLON`` -> ``GB``, ``XTKS`` -> ``JP``...), the same mapping zipline uses
    to pick the pipeline domain of an algorithm from its calendar.
    """
    from zipline.pipeline.domain import BUILT_IN_DOMAINS

    codes = {d.calendar_name: d.country_code for d in BUILT_IN_DOMAINS}
    return codes.get(canonical_calendar_name(calendar_name))


def canonical_calendar_name(calendar_name):
    """The exchange_calendars name of ``calendar_name`` (aliases resolved).

    ``'NYSE'`` -> ``'XNYS'``, ``'LSE'`` -> ``'XLON'``. An unknown name raises
    ``ValueError`` naming it and a few valid ones.
    """
    import exchange_calendars as xcals

    name = str(calendar_name)
    if name not in xcals.get_calendar_names(include_aliases=True):
        raise ValueError(
            f"unknown trading calendar {name!r}; use an exchange_calendars name such as "
            "XNYS, XLON, XTKS, XFRA, XTSE or XASX (exchange_calendars.get_calendar_names() "
            "lists them all)"
        )
    return xcals.resolve_alias(name)


def _session(value, what):
    if value is None:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {value!r} is not a date: {exc}") from None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def register_sample_bundle(name=SAMPLE_BUNDLE):
    """Register the embedded sample (skfolio's datasets; no network)."""
    from .ingestions import register_atomic
    from .sources import load_sample
    from .writer import make_ingest

    register_atomic(name, make_ingest(lambda environ: load_sample(), describe=name),
                    calendar_name=CALENDAR)
    REGISTERED[name] = "embedded sample: 20 US large caps 1990-2022, S&P 500 index, 5 factor ETFs"
    return name


def register_csv_bundle(name=CSV_BUNDLE, directory=None, ohlc=None, calendar_name=CALENDAR,
                        start_session=None, end_session=None, country_code=None,
                        fundamentals=None, fundamental_columns=(), adjustments=None):
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
    adjustments : {'raise', 'quarantine'}, optional
        Implausible splits, dividends or adj_close moves (see the README's
        list of ingest checks): raise (default), or leave them out and list
        them in the ingest summary; when omitted,
        ``$FACTORARB_CSV_ADJUSTMENTS`` or 'raise'.
    calendar_name : str, default 'XNYS'
        Any exchange_calendars name (``XLON``, ``XTKS``, ``XFRA``...; aliases
        such as ``LSE`` are resolved). Every price row must fall on one of its
        sessions. Run the bundle with ``zipline run --trading-calendar NAME``.
    start_session, end_session : date-like, optional
        First and last session the bundle may cover (default: the calendar's
        whole range). Rows outside are refused, naming the row.
    country_code : str, optional
        ISO 3166 code of the exchanges written to the asset db; default: the
        calendar's country (``XLON`` -> ``GB``, see :func:`country_code_of`).
        zipline's pipeline engine selects the assets of the country of the
        algorithm's calendar, so the two must agree.
    fundamentals : str or path, optional
        A file or folder of point-in-time fundamentals (``date,symbol,<columns>``,
        see :mod:`~zipline_factorarb.data.fundamentals`); default: the
        ``fundamentals/`` sub-folder of ``directory`` when it exists.
    fundamental_columns : sequence of str, optional
        Extra numeric columns of the price files to store as fundamentals too
        (e.g. ``("market_cap",)``).

    Examples
    --------
    In ``~/.zipline/extension.py``::

        from zipline_factorarb import register_csv_bundle
        register_csv_bundle("my-etfs", "~/data/etfs")
        register_csv_bundle("ftse", "~/data/ftse", calendar_name="XLON")
    """
    from .errors import BundleDataError
    from .fundamentals import fundamentals_step
    from .ingestions import register_atomic
    from .sources import load_directory
    from .writer import make_ingest

    check_choice("ohlc", ohlc, (None, "raise", "repair"))
    calendar_name = canonical_calendar_name(calendar_name)
    start_session = _session(start_session, "start_session")
    end_session = _session(end_session, "end_session")
    if start_session is not None and end_session is not None and end_session < start_session:
        raise ValueError(f"end_session {end_session.date()} is before start_session "
                         f"{start_session.date()}")
    if country_code is None:
        country_code = country_code_of(calendar_name)
        if country_code is None:
            raise ValueError(
                f"no country is known for calendar {calendar_name!r}; pass country_code= "
                "(the ISO 3166 code of its exchanges, e.g. 'US')"
            )
    country_code = str(country_code).strip().upper()
    if len(country_code) != 2 or not country_code.isalpha():
        raise ValueError(f"country_code must be a two-letter ISO 3166 code, got {country_code!r}")
    if isinstance(fundamental_columns, str):
        fundamental_columns = (fundamental_columns,)
    fundamental_columns = tuple(fundamental_columns or ())

    def folder_of(environ):
        folder = directory or environ.get(CSV_DIR_ENV)
        if not folder:
            raise BundleDataError(
                f"bundle {name!r} has no price folder: set {CSV_DIR_ENV} or register it "
                "with register_csv_bundle(name, directory)"
            )
        return folder

    if adjustments not in (None, "raise", "quarantine"):
        raise ValueError(f"adjustments must be 'raise' or 'quarantine', got {adjustments!r}")

    def load(environ):
        # the switches named in errors: the environment variable where it applies
        return load_directory(
            folder_of(environ),
            adjustments=adjustments or environ.get(CSV_ADJUSTMENTS_ENV, "raise"),
            ohlc_switch=None if ohlc else f"{CSV_OHLC_ENV}=repair",
            adjustments_switch=None if adjustments else f"{CSV_ADJUSTMENTS_ENV}=quarantine")

    def ingest(environ, *rest):
        # the mode and the folder are read at ingest time, from the environment
        mode = ohlc or environ.get(CSV_OHLC_ENV, "raise")
        extra = fundamentals_step(lambda: folder_of(environ), fundamentals, fundamental_columns)
        return make_ingest(load, ohlc=mode, describe=name, country_code=country_code,
                           extra_step=extra)(environ, *rest)

    register_atomic(name, ingest, calendar_name=calendar_name, start_session=start_session,
                    end_session=end_session)
    where = f"{directory or '$' + CSV_DIR_ENV}"
    REGISTERED[name] = f"user CSV/Parquet files from {where}, calendar {calendar_name}"
    return name


def register_bundles():
    """Register ``factorarb-sample`` and ``factorarb-csv``; safe to call twice."""
    from zipline.data.bundles import bundles

    if SAMPLE_BUNDLE not in bundles:
        register_sample_bundle()
    if CSV_BUNDLE not in bundles:
        register_csv_bundle()
    return [SAMPLE_BUNDLE, CSV_BUNDLE]
