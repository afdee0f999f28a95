"""Atomic ingestions: whatever stops ``zipline ingest``, the previous good
ingestion stays the one ``zipline run`` loads.

The project's bundles are registered with ``create_writers=False``
(:func:`register_atomic`); :func:`atomic_ingest` writes a lock file, lets the
bundle write into a hidden staging folder, adds the completion manifest
:data:`MANIFEST_FILE` last and renames the folder into place in one
``os.replace``. :func:`sweep` removes what a killed ingest left behind. The
full procedure, what is removed and why, is in ``docs/ingest.md``
("An ingestion appears whole or not at all").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import threading
import warnings
from pathlib import Path

log = logging.getLogger("zipline_factorarb.ingest")

#: Written last into each ingestion folder: relative path -> size in bytes
#: of every other file.
MANIFEST_FILE = "factorarb_manifest.json"
_PREFIX = ".factorarb-ingest-"
_LOCK_SUFFIX = ".lock"
_STAGING_SUFFIX = ".partial"
#: What zipline opens in an ingestion folder (used for pre-manifest folders).
_ZIPLINE_PARTS = ("adjustments.sqlite", "daily_equities.bcolz")


# ---------------------------------------------------------------- processes
def _start_time(pid):
    """The process's start time in clock ticks (Linux), or None if unknown."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        # the command name (field 2) may contain spaces: split after its ')'
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _owner():
    pid = os.getpid()
    return dict(pid=pid, host=socket.gethostname(), start=_start_time(pid))


def _alive(owner):
    """Whether the process described by a lock's ``owner`` still runs."""
    try:
        pid = int(owner["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if owner.get("host") not in (None, socket.gethostname()):
        # another machine sharing the folder: it cannot be checked from here
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    except OSError:
        return False
    recorded = owner.get("start")
    if recorded is not None:
        now = _start_time(pid)
        if now is not None and now != recorded:
            return False  # the process id was reused
    return True


def _read_lock(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- manifest
def write_manifest(folder):
    """Write :data:`MANIFEST_FILE` listing every other file of ``folder``."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST_FILE:
            files[path.relative_to(folder).as_posix()] = path.stat().st_size
    tmp = folder / (MANIFEST_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"version": 1, "files": files}, f, indent=0, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MANIFEST_FILE)
    return files


def check_ingestion(folder):
    """Why the ingestion folder is incomplete, or None when it is complete.

    A folder with a manifest is complete when every file listed exists with
    the listed size. A folder without one is incomplete when it is empty or
    lacks one of zipline's parts (asset db, adjustments db, daily bars);
    otherwise it predates manifests and is taken as complete.
    """
    folder = Path(folder)
    try:
        entries = os.listdir(folder)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not entries:
        return "empty (an ingest stopped before finishing)"
    manifest = folder / MANIFEST_FILE
    if not manifest.exists():
        missing = [p for p in _ZIPLINE_PARTS if p not in entries]
        if not any(e.startswith("assets-") and e.endswith(".sqlite") for e in entries):
            missing.insert(0, "assets-N.sqlite")
        if missing:
            return f"no manifest and missing {', '.join(missing)} (an ingest stopped part-way)"
        return None
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable manifest (an ingest stopped while writing it)"
    for rel, size in files.items():
        try:
            actual = (folder / rel).stat().st_size
        except OSError:
            return f"{rel} is missing (an ingest stopped part-way)"
        if actual != size:
            return f"{rel} has {actual} bytes, the manifest says {size} (copied part-way)"
    return None


# ---------------------------------------------------------------- sweep
def _bundle_folder(bundle, environ):
    import zipline.utils.paths as pth

    return Path(pth.data_path([bundle], environ=environ))


def _is_ingestion_name(name):
    from zipline.data.bundles.core import from_bundle_ingest_dirname

    if name.startswith("."):
        return False
    try:
        from_bundle_ingest_dirname(name)
    except (ValueError, TypeError):
        return False
    return True


def _remove(path, why):
    log.warning("zipline_factorarb: removed %s: %s", path, why)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def sweep(bundle, environ=None):
    """Remove what interrupted ingests of ``bundle`` left behind.

    Safe to call at any time, also while another process ingests the same
    bundle: folders held by a live process's lock are left alone. Never
    raises (zipline loads extensions before every command); returns the
    paths removed.
    """
    try:
        return _sweep(bundle, os.environ if environ is None else environ)
    except Exception as exc:  # pragma: no cover - never break a zipline command
        log.warning("zipline_factorarb: could not check the ingestions of %r: %s", bundle, exc)
        return []


def _live_locks(folder, names=None):
    """Timestamps of the ingests of a bundle folder whose process still runs."""
    held = set()
    for name in os.listdir(folder) if names is None else names:
        if name.startswith(_PREFIX) and name.endswith(_LOCK_SUFFIX):
            owner = _read_lock(Path(folder) / name)
            if owner is not None and _alive(owner):
                held.add(name[len(_PREFIX):-len(_LOCK_SUFFIX)])
    return held


def _sweep(bundle, environ):
    folder = _bundle_folder(bundle, environ)
    if not folder.is_dir():
        return []
    removed = []
    names = os.listdir(folder)
    held = _live_locks(folder, names)
    for name in sorted(names):
        path = folder / name
        if name.startswith(_PREFIX):
            for suffix, what in ((_LOCK_SUFFIX, "lock"), (_STAGING_SUFFIX, "staging folder")):
                stamp = name[len(_PREFIX):-len(suffix)]
                if name.endswith(suffix) and stamp not in held and (
                        suffix == _STAGING_SUFFIX or path.exists()):
                    _remove(path, f"{what} of a stopped ingest")
                    removed.append(path)
        elif _is_ingestion_name(name) and path.is_dir() and name not in held:
            why = check_ingestion(path)
            if why is not None:
                _remove(path, f"incomplete ingestion of bundle {bundle!r}, {why}; "
                              "the previous complete ingestion is used")
                removed.append(path)
    cache = folder / ".cache"
    if cache.is_dir() and not held:
        with contextlib.suppress(OSError):
            if not any(cache.iterdir()):
                cache.rmdir()
                removed.append(cache)
    return removed


# ---------------------------------------------------------------- ingest
@contextlib.contextmanager
def _sigterm_as_exit():
    """Within the block, SIGTERM raises ``SystemExit(143)`` so cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # pragma: no cover - not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _make_writers(staging, bundle, calendar, start_session, end_session):
    """zipline's writers, created as ``zipline.data.bundles.ingest`` does."""
    from zipline.assets import AssetDBWriter
    from zipline.data.adjustments import SQLiteAdjustmentWriter
    from zipline.data.bcolz_daily_bars import BcolzDailyBarReader, BcolzDailyBarWriter
    from zipline.data.bcolz_minute_bars import BcolzMinuteBarWriter
    from zipline.data.bundles import bundles
    from zipline.data.bundles.core import (
        adjustment_db_relative,
        asset_db_relative,
        daily_equity_relative,
        minute_equity_relative,
    )

    def here(relative):  # (bundle, timestamp, name) -> staging/name
        return str(staging.joinpath(*relative[2:]))

    minutes_per_day = getattr(bundles.get(bundle), "minutes_per_day", 390)
    daily_path = here(daily_equity_relative(bundle, "x"))
    daily = BcolzDailyBarWriter(daily_path, calendar, start_session, end_session)
    daily.write(())  # the adjustment writer opens the daily tables
    minute_path = here(minute_equity_relative(bundle, "x"))
    os.makedirs(minute_path, exist_ok=True)
    minute = BcolzMinuteBarWriter(minute_path, calendar, start_session, end_session,
                                  minutes_per_day=minutes_per_day)
    assets = AssetDBWriter(here(asset_db_relative(bundle, "x")))
    adjustments = SQLiteAdjustmentWriter(here(adjustment_db_relative(bundle, "x")),
                                         BcolzDailyBarReader(daily_path), overwrite=True)
    return assets, minute, daily, adjustments


def _replace_dir(src, dst):
    """Move ``src`` onto ``dst`` (absent or an empty folder) in one rename."""
    try:
        os.replace(src, dst)
    except OSError:
        # Windows cannot rename onto an existing folder; zipline's is empty
        if dst.is_dir() and not any(dst.iterdir()):
            dst.rmdir()
            os.replace(src, dst)
        else:
            raise


def atomic_ingest(write):
    """Wrap a zipline ingest function so that its ingestion appears atomically.

    ``write`` has zipline's 11-argument ingest signature and receives writers
    and an ``output_dir`` that point into a hidden staging folder. Register
    the result with ``create_writers=False`` (:func:`register_atomic`); if
    zipline passes writers anyway, they are used and only the manifest is
    added (zipline then copies the folder as usual, and :func:`sweep` removes
    a copy that was cut short).
    """

    def ingest(environ, asset_db_writer, minute_bar_writer, daily_bar_writer,
               adjustment_writer, calendar, start_session, end_session, cache,
               show_progress, output_dir):
        output_dir = Path(output_dir)
        bundle_dir = output_dir.parent
        bundle = bundle_dir.name
        if daily_bar_writer is not None:
            # registered with create_writers=True: zipline's own working folder,
            # copied by zipline after we return (no sweep here: zipline's open
            # .cache and its empty output folder are still in use)
            write(environ, asset_db_writer, minute_bar_writer, daily_bar_writer,
                  adjustment_writer, calendar, start_session, end_session, cache,
                  show_progress, str(output_dir))
            write_manifest(Path(daily_bar_writer._filename).parent)
            return

        stamp = output_dir.name
        lock = bundle_dir / f"{_PREFIX}{stamp}{_LOCK_SUFFIX}"
        staging = bundle_dir / f"{_PREFIX}{stamp}{_STAGING_SUFFIX}"
        with _sigterm_as_exit():
            lock.write_text(json.dumps(_owner()))
            sweep(bundle, environ)  # what earlier, stopped ingests left
            try:
                staging.mkdir()
                writers = _make_writers(staging, bundle, calendar, start_session, end_session)
                assets, minute, daily, adjustments = writers
                with adjustments:
                    write(environ, assets, minute, daily, adjustments, calendar,
                          start_session, end_session, cache, show_progress, str(staging))
                with contextlib.suppress(AttributeError):
                    assets.engine.dispose()  # no pooled connection into the moved folder
                write_manifest(staging)
                _replace_dir(staging, output_dir)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                with contextlib.suppress(OSError):
                    output_dir.rmdir()  # zipline's empty folder; never a full one
                cache_dir = Path(getattr(cache, "path", "") or bundle_dir / ".cache")
                with contextlib.suppress(OSError):
                    if (cache_dir.is_dir() and not any(cache_dir.iterdir())
                            and not _live_locks(bundle_dir) - {stamp}):
                        # zipline keeps the cache on failure; ours is never used
                        cache_dir.rmdir()
                raise
            finally:
                with contextlib.suppress(OSError):
                    lock.unlink()

    ingest.__doc__ = getattr(write, "__doc__", None)
    return ingest


def register_atomic(name, write, **kwargs):
    """``zipline.data.bundles.register`` with :func:`atomic_ingest`, then :func:`sweep`.

    ``kwargs`` go to zipline's ``register`` (``calendar_name``,
    ``start_session``...); ``create_writers`` is always False.
    """
    from zipline.data.bundles import register

    kwargs["create_writers"] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        register(name, atomic_ingest(write), **kwargs)
    for w in caught:  # zipline's "Overwriting bundle": point at the user's call
        warnings.warn(w.message, w.category, stacklevel=3)
    sweep(name)
    return name
