"""Interrupted ingests never replace the good ingestion.

A real ``zipline ingest`` subprocess is stopped with SIGTERM, SIGINT or
SIGKILL at several moments, found by watching the zipline root (never by a
switch in the product code):

- as soon as zipline has created the new, empty timestamped folder (the
  bundle is reading and validating its files);
- while the bars are being written (the asset db of the staging folder
  exists);
- the instant the new timestamped folder has any content (the moment zipline
  itself would be copying the finished ingestion into place).

Afterwards the next zipline command (a short ``zipline run``) must use a
complete ingestion: the previous one, or the new one when the kill came after
it was moved into place. Nothing partial may be left: no incomplete
timestamped folder, staging folder, lock file, empty ``.cache`` or temporary
working folder.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from zipline.data import bundles

from conftest import REPO_ROOT, ingest, zipline_environ
from zipline_factorarb.data.ingestions import MANIFEST_FILE, check_ingestion, sweep

pytestmark = pytest.mark.slow

BUNDLE = "factorarb-csv"
ALGO = """
import os
from zipline.api import record, symbol

def initialize(context):
    context.asset = symbol(os.environ["PROBE_SYMBOL"])

def handle_data(context, data):
    record(close=data.current(context.asset, "close"))
"""


def _write_prices(folder, prefix, n_symbols, n_days, seed):
    folder.mkdir(parents=True, exist_ok=True)
    import exchange_calendars as xcals

    sessions = xcals.get_calendar("XNYS").sessions_in_range("2010-01-04", "2017-12-29")[:n_days]
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_symbols):
        c = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, len(sessions))))
        frames.append(pd.DataFrame({
            "date": sessions.strftime("%Y-%m-%d"), "symbol": f"{prefix}{i:03d}", "open": c,
            "high": c * 1.01, "low": c * 0.99, "close": np.round(c, 3), "volume": 1000}))
    prices = pd.concat(frames, ignore_index=True)
    prices.to_csv(folder / "prices.csv", index=False)
    return prices


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("signals")
    old = _write_prices(base / "old", "OLD", 3, 30, seed=1)
    # large enough that reading and writing take seconds on a small machine
    _write_prices(base / "new", "NEW", 80, 1500, seed=2)
    (base / "algo.py").write_text(ALGO)
    return base, old


def _bundle_dir(root):
    return root / "data" / BUNDLE


def _listing(root):
    folder = _bundle_dir(root)
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def _start(root, src, tmpdir):
    env = zipline_environ(root, FACTORARB_CSV_DIR=src, TMPDIR=tmpdir)
    cmd = [sys.executable, "-m", "zipline", "-e", str(REPO_ROOT / "bundles" / "extension.py"),
           "ingest", "-b", BUNDLE]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(proc, predicate, timeout=240):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


def _new_stamp(root, before):
    """The new timestamped folder (not hidden, not in ``before``), or None."""
    for name in _listing(root):
        if not name.startswith(".") and name not in before:
            return name
    return None


def _staging_has_assets(root):
    folder = _bundle_dir(root)
    for name in _listing(root):
        if name.endswith(".partial"):
            db = folder / name / "assets-7.sqlite"
            try:
                return db.stat().st_size > 0
            except OSError:
                return False
    return False


def _new_folder_has_content(root, before):
    stamp = _new_stamp(root, before)
    if stamp is None:
        return False
    try:
        return bool(os.listdir(_bundle_dir(root) / stamp))
    except OSError:
        return False


def _zipline_run(root, base, symbol, out):
    env = zipline_environ(root, PROBE_SYMBOL=symbol)
    cmd = [sys.executable, "-m", "zipline", "-e", str(REPO_ROOT / "bundles" / "extension.py"),
           "run", "-f", str(base / "algo.py"), "-b", BUNDLE, "-s", "2010-01-05",
           "-e", "2010-01-29", "--no-benchmark", "-o", str(out)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


MOMENTS = {
    # name: (signal, what to wait for)
    "SIGKILL while reading": (signal.SIGKILL, "folder"),
    "SIGTERM while reading": (signal.SIGTERM, "folder"),
    "SIGINT while reading": (signal.SIGINT, "folder"),
    "SIGKILL while writing": (signal.SIGKILL, "writing"),
    "SIGTERM while writing": (signal.SIGTERM, "writing"),
    "SIGKILL at the final move": (signal.SIGKILL, "final"),
    "SIGINT at the final move": (signal.SIGINT, "final"),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_interrupted_ingest_keeps_the_previous_one(sources, tmp_path, moment):
    base, old = sources
    sig, when = MOMENTS[moment]
    root = tmp_path / "zipline"
    ingest(BUNDLE, root, FACTORARB_CSV_DIR=base / "old")
    (good,) = _listing(root)
    before = set(_listing(root))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()

    proc = _start(root, base / "new", tmpdir)
    try:
        if when == "folder":
            hit = _wait_for(proc, lambda: _new_stamp(root, before) is not None)
        elif when == "writing":
            hit = _wait_for(proc, lambda: _staging_has_assets(root))
        else:
            hit = _wait_for(proc, lambda: _new_folder_has_content(root, before))
        assert hit, f"the moment was never seen: {proc.communicate()[1][-2000:]}"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 or when == "final", err[-2000:]
    assert "Traceback" not in err or sig != signal.SIGTERM, err[-3000:]

    if sig in (signal.SIGTERM, signal.SIGINT) and when == "writing":
        # a catchable signal cleans up at once, before any other command
        assert _listing(root) == [good], _listing(root)

    # the next command sees only complete ingestions
    out = tmp_path / "perf.pickle"
    new = _new_stamp(root, before)
    complete_new = new is not None and check_ingestion(_bundle_dir(root) / new) is None
    probe = "NEW000" if complete_new else "OLD000"
    result = _zipline_run(root, base, probe, out)
    assert result.returncode == 0, result.stderr[-3000:]
    perf = pd.read_pickle(out)
    if probe == "OLD000":
        expected = old[old["symbol"] == "OLD000"].set_index("date")["close"]
        assert perf["close"].iloc[0] == pytest.approx(expected.loc["2010-01-05"], abs=1e-3)

    listing = _listing(root)
    assert good in listing
    leftovers = [n for n in listing if n.startswith(".")]
    assert leftovers == [], leftovers  # no staging folder, lock or empty .cache
    for name in listing:
        assert check_ingestion(_bundle_dir(root) / name) is None, name
    if when != "final":
        assert listing == [good]
    assert list(tmpdir.iterdir()) == []  # no temporary working folder leaked


def test_completed_ingestion_has_a_manifest_of_every_file(sources, tmp_path):
    base, _ = sources
    root = tmp_path / "zipline"
    ingest(BUNDLE, root, FACTORARB_CSV_DIR=base / "old")
    (stamp,) = _listing(root)
    folder = _bundle_dir(root) / stamp
    manifest = json.loads((folder / MANIFEST_FILE).read_text())["files"]
    on_disk = {p.relative_to(folder).as_posix(): p.stat().st_size
               for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE}
    assert manifest == on_disk
    assert "assets-7.sqlite" in manifest and "adjustments.sqlite" in manifest


def _copy_good(root, stamp, new_stamp):
    import shutil

    src = _bundle_dir(root) / stamp
    dst = _bundle_dir(root) / new_stamp
    shutil.copytree(src, dst)
    return dst


def test_sweep_removes_what_is_incomplete_and_nothing_else(sources, tmp_path, caplog):
    base, _ = sources
    root = tmp_path / "zipline"
    env = zipline_environ(root)
    ingest(BUNDLE, root, FACTORARB_CSV_DIR=base / "old")
    (good,) = _listing(root)
    folder = _bundle_dir(root)
    # a copy cut short: one file shorter than the manifest says
    truncated = _copy_good(root, good, "2030-01-01T00;00;00.000001")
    victim = truncated / "adjustments.sqlite"
    victim.write_bytes(victim.read_bytes()[:100])
    # a copy missing a file
    missing = _copy_good(root, good, "2030-01-02T00;00;00.000001")
    (missing / "assets-7.sqlite").unlink()
    # an empty folder, a staging folder and a lock of a process that ended
    (folder / "2030-01-03T00;00;00.000001").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stamp = "2030-01-04T00;00;00.000001"
    (folder / f".factorarb-ingest-{stamp}.lock").write_text(json.dumps({"pid": dead.pid}))
    (folder / f".factorarb-ingest-{stamp}.partial").mkdir()
    (folder / stamp).mkdir()
    (folder / ".cache").mkdir()
    # a running ingest (this process holds the lock): left alone
    live = "2030-01-05T00;00;00.000001"
    (folder / f".factorarb-ingest-{live}.lock").write_text(json.dumps({"pid": os.getpid()}))
    (folder / f".factorarb-ingest-{live}.partial").mkdir()
    (folder / live).mkdir()
    # another bundle's empty ingestion folder: not ours, never touched
    other = root / "data" / "someone-else" / "2030-01-06T00;00;00.000001"
    other.mkdir(parents=True)

    with caplog.at_level("WARNING", logger="zipline_factorarb.ingest"):
        removed = sweep(BUNDLE, environ=env)
    names = sorted(p.name for p in removed)
    assert names == sorted([truncated.name, missing.name, "2030-01-03T00;00;00.000001",
                            f".factorarb-ingest-{stamp}.lock",
                            f".factorarb-ingest-{stamp}.partial", stamp])
    assert "adjustments.sqlite has" in caplog.text and truncated.name in caplog.text
    assert sorted(_listing(root)) == sorted([
        good, ".cache", f".factorarb-ingest-{live}.lock", f".factorarb-ingest-{live}.partial",
        live])
    assert other.is_dir()

    # once the running ingest is over, its leftovers and the empty cache go
    (folder / f".factorarb-ingest-{live}.lock").write_text(json.dumps({"pid": dead.pid}))
    sweep(BUNDLE, environ=env)
    assert _listing(root) == [good]
    data = bundles.load(BUNDLE, environ=env)
    try:
        assert data.asset_finder.lookup_symbol("OLD000", as_of_date=None).symbol == "OLD000"
    finally:
        data.close()


def test_a_pid_reused_by_another_process_does_not_hold_a_lock(sources, tmp_path):
    from zipline_factorarb.data.ingestions import _alive, _start_time

    if _start_time(os.getpid()) is None:
        pytest.skip("process start times are read from /proc, absent on this system")
    assert _alive({"pid": os.getpid(), "start": _start_time(os.getpid())})
    assert not _alive({"pid": os.getpid(), "start": _start_time(os.getpid()) - 1})


def test_failed_ingest_leaves_nothing_and_prints_the_error_alone(sources, tmp_path):
    base, _ = sources
    root = tmp_path / "zipline"
    ingest(BUNDLE, root, FACTORARB_CSV_DIR=base / "old")
    (good,) = _listing(root)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "AAA.csv").write_text("date,open,high,low,close,volume\n"
                                 "2010-01-05,1,1,1,1,\"15,442,900\"\n")
    env = zipline_environ(root, FACTORARB_CSV_DIR=bad)
    cmd = [sys.executable, "-m", "zipline", "-e", str(REPO_ROOT / "bundles" / "extension.py"),
           "ingest", "-b", BUNDLE]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: file ") and "AAA.csv, line 2, symbol AAA" in last
    assert "thousands separators" in last
    assert _listing(root) == [good]  # no empty timestamped folder, no empty .cache

    env["FACTORARB_TRACEBACK"] = "1"
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "BundleDataError" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == last


def test_registered_with_zipline_writers_the_manifest_still_guards(sources, tmp_path):
    """Registered with zipline's own writers (create_writers=True), zipline
    copies the working folder; the manifest then tells a cut copy apart."""
    from zipline.data.bundles import ingest as zipline_ingest
    from zipline.data.bundles import register, unregister

    from zipline_factorarb.data.ingestions import atomic_ingest
    from zipline_factorarb.data.sources import load_directory
    from zipline_factorarb.data.writer import make_ingest

    base, _ = sources
    name = "factorarb-zipline-writers"
    register(name, atomic_ingest(make_ingest(lambda environ: load_directory(base / "old"),
                                             describe=name)), calendar_name="XNYS")
    try:
        root = tmp_path / "zipline"
        zipline_ingest(name, environ=zipline_environ(root))
        (stamp,) = [p for p in (root / "data" / name).iterdir() if not p.name.startswith(".")]
        assert (stamp / MANIFEST_FILE).is_file() and check_ingestion(stamp) is None
        (stamp / "adjustments.sqlite").write_bytes(b"")
        assert "adjustments.sqlite has 0 bytes" in check_ingestion(stamp)
    finally:
        unregister(name)
