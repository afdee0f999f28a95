"""The zipline ingest function: prepared data -> asset db, bars, adjustments.

zipline calls :func:`make_ingest`'s result with its writers. All reading and
validation happen before the first write; if anything fails, the empty
timestamped ingestion folder that zipline created beforehand is removed, so
``zipline run`` keeps using the previous good ingestion.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .sectors import UNKNOWN_SECTOR
from .validation import prepare

log = logging.getLogger("zipline_factorarb.ingest")

#: Written into each ingestion folder: what was ingested and repaired.
SUMMARY_FILE = "factorarb_ingest.json"


def write_bundle(prepared, asset_db_writer, daily_bar_writer, adjustment_writer,
                 show_progress=False, country_code="US"):
    """Write a :class:`~.validation.PreparedBundle` with zipline's writers.

    ``country_code`` (ISO 3166) is that of every exchange: zipline's pipeline
    engine selects the assets of its domain's country (``US`` for XNYS,
    ``GB`` for XLON...).
    """
    assets = prepared.assets.reset_index(drop=True)
    sids = pd.Index(assets["symbol"])  # sid = position in the sorted symbol list
    equities = assets[["symbol", "asset_name", "start_date", "end_date", "exchange"]].assign(
        first_traded=assets["start_date"],
        auto_close_date=assets["end_date"] + pd.Timedelta(days=1))
    equities.index.name = "sid"
    names = sorted(assets["exchange"].unique())
    exchanges = pd.DataFrame({"exchange": names, "canonical_name": names,
                              "country_code": country_code})
    supplementary = []
    for sid, rec in assets.iterrows():
        supplementary.append(dict(sid=sid, field="sector", value=str(int(rec["sector"]))))
        supplementary.append(dict(sid=sid, field="asset_type", value=rec["asset_type"]))
    supplementary = pd.DataFrame(supplementary)
    supplementary["start_date"] = assets["start_date"].min()
    supplementary["end_date"] = assets["end_date"].max()
    asset_db_writer.write(equities=equities, exchanges=exchanges,
                          equity_supplementary_mappings=supplementary)

    daily_bar_writer.write(((sid, prepared.bars[symbol]) for sid, symbol in enumerate(sids)),
                           show_progress=show_progress)

    splits = prepared.splits.assign(sid=lambda d: sids.get_indexer(d["symbol"]))
    splits = splits[["sid", "ratio", "effective_date"]].astype(
        {"sid": np.int64, "ratio": float})
    divs = prepared.dividends.assign(sid=lambda d: sids.get_indexer(d["symbol"]))
    ex_date = pd.to_datetime(divs["ex_date"])  # also the declared, record and pay dates
    divs = pd.DataFrame({
        "sid": divs["sid"].astype(np.int64),
        **dict.fromkeys(("ex_date", "declared_date", "record_date", "pay_date"), ex_date),
        "amount": divs["amount"].astype(float)})
    splits["effective_date"] = pd.to_datetime(splits["effective_date"])
    adjustment_writer.write(splits=splits, dividends=divs)


def write_summary(prepared, output_dir):
    report = dict(prepared.report)
    assets = prepared.assets
    report["assets"] = {
        rec["symbol"]: dict(sid=i, name=rec["asset_name"], asset_type=rec["asset_type"],
                            sector=None if rec["sector"] == UNKNOWN_SECTOR else int(rec["sector"]),
                            start=str(rec["start_date"].date()), end=str(rec["end_date"].date()))
        for i, rec in assets.reset_index(drop=True).iterrows()
    }
    report["n_splits"] = int(len(prepared.splits))
    report["n_dividends"] = int(len(prepared.dividends))
    Path(output_dir, SUMMARY_FILE).write_text(json.dumps(report, indent=1, default=str))


def _remove_failed_ingestion(output_dir):
    """Remove the timestamped folder zipline created before calling us.

    zipline writes into a temporary working folder and moves it into place
    only on success; the final folder it created up-front stays empty on
    failure, and ``zipline run`` would otherwise pick it as the newest
    ingestion. Only an empty folder is removed.
    """
    path = Path(output_dir)
    try:
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    except OSError:  # pragma: no cover - best effort, never mask the real error
        log.warning("could not remove the failed ingestion folder %s", path)


def make_ingest(load, ohlc="raise", describe="bundle", country_code="US", extra_step=None):
    """Build a zipline ingest function from a zero-argument ``load`` callable.

    ``load(environ)`` returns a :class:`~.sources.PriceData`. The returned
    function has zipline's 11-argument ingest signature. ``extra_step``, if
    given, is called as ``extra_step(prepared)`` after validation and before
    any write (it validates its own input, e.g. fundamentals); it returns a
    callable that writes its files into the ingestion's working folder after
    the bars, so that zipline moves them into place with the rest.
    """

    def ingest(environ, asset_db_writer, minute_bar_writer, daily_bar_writer,
               adjustment_writer, calendar, start_session, end_session, cache,
               show_progress, output_dir):
        try:
            data = load(environ)
            sessions = calendar.sessions_in_range(start_session, end_session)
            prepared = prepare(data, sessions, ohlc=ohlc,
                               calendar_name=getattr(calendar, "name", None))
            write_extra = extra_step(prepared) if extra_step is not None else None
        except BaseException:
            _remove_failed_ingestion(output_dir)
            raise
        try:
            write_bundle(prepared, asset_db_writer, daily_bar_writer, adjustment_writer,
                         show_progress=show_progress, country_code=country_code)
            if write_extra is not None:
                write_extra(_working_dir_of(daily_bar_writer, output_dir))
        except BaseException:
            _remove_failed_ingestion(output_dir)
            raise
        # The summary goes into the working copy only after the writes succeed;
        # zipline moves it into place together with the data.
        write_summary(prepared, _working_dir_of(daily_bar_writer, output_dir))
        print(f"[{describe}] {prepared.summary()}")

    ingest.__doc__ = f"zipline ingest function for the {describe} bundle."
    return ingest


def _working_dir_of(daily_bar_writer, output_dir):
    """The ingestion's working folder (zipline moves it to ``output_dir``)."""
    filename = getattr(daily_bar_writer, "_filename", None)
    if filename:
        # .../<working>/daily_equities.bcolz
        return str(Path(filename).parent)
    return output_dir
