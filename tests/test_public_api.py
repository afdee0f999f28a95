"""The package's public API: lazy namespaces, names from the top, no heavy imports."""

import subprocess
import sys

import pytest


def _run(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_the_package_imports_nothing_heavy():
    heavy = ("zipline", "cvxpy", "jax", "pandas", "dask", "scipy")
    for module in ("zipline_factorarb", "zipline_factorarb.pipeline",
                   "zipline_factorarb.optimize", "zipline_factorarb.kernels"):
        code = (f"import sys, {module} as m; dir(m); "
                f"print(sorted(x for x in {heavy!r} if x in sys.modules))")
        assert _run(code) == "[]", module


@pytest.mark.parametrize("namespace", ["zipline_factorarb", "zipline_factorarb.pipeline"])
def test_every_listed_name_resolves(namespace):
    import importlib

    package = importlib.import_module(namespace)
    assert package.__all__ == sorted(package.__all__, key=package.__all__.index)
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        package.nope  # noqa: B018


def test_top_level_names_are_the_defining_objects():
    import zipline_factorarb as zf
    from zipline_factorarb.optimize.constraints import TrackingError
    from zipline_factorarb.optimize.orders import order_optimal_portfolio
    from zipline_factorarb.optimize.risk_model import RiskModel
    from zipline_factorarb.pipeline.classifiers import IsStock, Sector
    from zipline_factorarb.pipeline.kalman import KalmanInnovation
    from zipline_factorarb.pipeline.pca_residual import PCAResidual
    from zipline_factorarb.pipeline.wls import WLSResidual

    assert zf.WLSResidual is WLSResidual and zf.PCAResidual is PCAResidual
    assert zf.KalmanInnovation is KalmanInnovation
    assert zf.Sector is Sector and zf.IsStock is IsStock
    assert zf.order_optimal_portfolio is order_optimal_portfolio
    assert zf.TrackingError is TrackingError and zf.RiskModel is RiskModel
    from zipline_factorarb.pipeline import WLSResidual as from_pipeline

    assert from_pipeline is WLSResidual
    for name in ("WLSResidual", "PCAResidual", "FactorRiskModel", "IsStock",
                 "order_optimal_portfolio", "MaximizeAlpha", "TrackingError", "RiskModel",
                 "register_bundles"):
        assert name in dir(zf)


def test_algorithms_import_only_public_names():
    # the algorithms this package ships as examples use the public namespaces
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    paths = sorted((root / "algorithms").glob("*.py"))
    assert len(paths) >= 8
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "zipline_factorarb"):
                assert node.module in ("zipline_factorarb", "zipline_factorarb.pipeline",
                                       "zipline_factorarb.optimize", "zipline_factorarb.kernels",
                                       "zipline_factorarb.algo", "zipline_factorarb.records"), (
                    path.name, node.module)
                assert not any(alias.name.startswith("_") for alias in node.names), path.name
