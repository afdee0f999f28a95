"""pyfolio tear sheets, headless, as figures (never ``plt.show`` or ``display``).

pyfolio-reloaded's ``create_full_tear_sheet`` has no ``return_fig``; the
individual tear sheets do, so each is called with ``return_fig=True`` under
the Agg backend, with pyfolio's IPython ``display`` calls (its tables) replaced
by a no-op for the duration.
Returns and positions get a tz-aware UTC index: with a tz-naive index
pyfolio's interesting-times code silently matches no period.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings


log = logging.getLogger(__name__)


#: pyfolio modules that call ``display`` (imported from IPython.display)
_DISPLAY_MODULES = ("pyfolio.utils", "pyfolio.tears", "pyfolio.plotting")


@contextlib.contextmanager
def _display_disabled():
    """pyfolio's ``display`` calls do nothing for the duration (restored after).

    Only modules already imported are patched: a figure that does not use pyfolio
    does not import it.
    """
    import sys

    patched = []
    try:
        for name in _DISPLAY_MODULES:
            module = sys.modules.get(name)
            if module is not None and hasattr(module, "display"):
                patched.append((module, module.display))
                module.display = lambda *args, **kwargs: None
        yield
    finally:
        for module, original in patched:
            module.display = original


@contextlib.contextmanager
def headless():
    """Agg backend, silenced stdout/warnings and no IPython ``display`` for the duration."""
    import matplotlib

    previous = matplotlib.get_backend()
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                _display_disabled():
            warnings.simplefilter("ignore")
            yield plt
    finally:
        if previous.lower() != "agg":
            try:
                matplotlib.use(previous, force=True)
            except Exception:  # pragma: no cover - a GUI backend that cannot start headless
                pass


def tear_sheet_figures(backtest):
    """pyfolio's tear sheets as ``(figures, skipped)``.

    ``figures`` maps a name to a matplotlib Figure. A tear sheet that pyfolio
    cannot draw for this backtest (e.g. round trips of a strategy that never
    closes a position) is left out; ``skipped`` maps its name to the reason.
    """
    import pyfolio

    figures, skipped = {}, {}
    try:
        with headless():  # pyfolio's format, UTC index
            returns, positions, transactions = pyfolio.utils.extract_rets_pos_txn_from_zipline(
                backtest.perf)
    except Exception as exc:  # a perf frame without the columns pyfolio reads
        skipped["all"] = f"pyfolio cannot read this perf frame: {type(exc).__name__}: {exc}"
        log.warning("pyfolio tear sheets skipped: %s", skipped["all"])
        return figures, skipped
    bench = backtest.benchmark_returns
    calls = {
        "returns": lambda: pyfolio.create_returns_tear_sheet(
            returns, positions=positions, transactions=transactions, benchmark_rets=bench,
            return_fig=True),
        "positions": lambda: pyfolio.create_position_tear_sheet(
            returns, positions, return_fig=True),
        "transactions": lambda: pyfolio.create_txn_tear_sheet(
            returns, positions, transactions, return_fig=True),
        "round_trips": lambda: pyfolio.create_round_trip_tear_sheet(
            returns, positions, transactions, return_fig=True),
    }
    if bench is not None:
        calls["interesting_times"] = lambda: pyfolio.create_interesting_times_tear_sheet(
            returns, benchmark_rets=bench, return_fig=True)
    with headless() as plt:
        for name, call in calls.items():
            try:
                fig = call()
            except Exception as exc:  # pyfolio raises many kinds on degenerate inputs
                skipped[name] = f"{type(exc).__name__}: {exc}"
                log.warning("pyfolio %s tear sheet skipped: %s", name, skipped[name])
                plt.close("all")
                continue
            if fig is not None:
                figures[name] = fig
    return figures, skipped
