"""The factorarb command: extension install/uninstall, bundle listing, demo."""

import subprocess
import sys

from click.testing import CliRunner

from conftest import zipline_environ
from zipline_factorarb.cli import BEGIN, main


def test_install_extension_is_idempotent_and_keeps_user_code(tmp_path):
    root = tmp_path / "zroot"
    root.mkdir()
    user_code = "from zipline.data.bundles import register\n# my own bundles\nX = 1"
    (root / "extension.py").write_text(user_code)
    runner = CliRunner()
    first = runner.invoke(main, ["install-extension", "--zipline-root", str(root)])
    assert first.exit_code == 0, first.output
    assert "appended to" in first.output
    text = (root / "extension.py").read_text()
    assert text.startswith(user_code) and text.count(BEGIN) == 1
    assert "import zipline_factorarb.extension" in text

    second = runner.invoke(main, ["install-extension", "--zipline-root", str(root)])
    assert second.exit_code == 0 and "already installed" in second.output
    assert (root / "extension.py").read_text() == text

    removed = runner.invoke(main, ["uninstall-extension", "--zipline-root", str(root)])
    assert removed.exit_code == 0 and "removed" in removed.output
    assert (root / "extension.py").read_text().strip() == user_code.strip()


def test_plain_zipline_finds_bundles_after_install(tmp_path):
    root = tmp_path / "zroot"
    env = zipline_environ(root)
    install = subprocess.run([sys.executable, "-m", "zipline_factorarb.cli", "install-extension"],
                             env=env, capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    assert "created" in install.stdout
    # plain `zipline`, no -e: the bundle is found through $ZIPLINE_ROOT/extension.py
    ingest = subprocess.run([sys.executable, "-m", "zipline", "ingest", "-b", "factorarb-sample"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    listing = subprocess.run([sys.executable, "-m", "zipline_factorarb.cli", "bundles"],
                             env=env, capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "factorarb-sample:" in listing.stdout
    assert "26 symbols, 1990-01-02 .. 2022-12-28" in listing.stdout
    assert "factorarb-csv:" in listing.stdout and "not ingested yet" in listing.stdout
    zipline_list = subprocess.run([sys.executable, "-m", "zipline", "bundles"], env=env,
                                  capture_output=True, text=True)
    assert "factorarb-sample" in zipline_list.stdout


def test_demo_runs_the_main_algorithm(sample_root, tmp_path):
    env = zipline_environ(sample_root)
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "zipline_factorarb.cli", "demo", "--start", "2021-01-04",
         "--end", "2021-06-30", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "factorarb-sample already ingested" in result.stdout
    pickle = out / "benchmark_relative" / "perf.pickle"  # the long-only flagship
    assert pickle.exists()
    assert f"results: {pickle.resolve()}" in result.stdout
    assert "total return" in result.stdout and "benchmark total return" in result.stdout
    assert "ex-ante tracking error" in result.stdout and "charged by zipline" in result.stdout
