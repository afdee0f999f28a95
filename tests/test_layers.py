"""No import runs upward: kernels import no adapter, pipeline does not import the algorithm layer."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "zipline_factorarb"

#: layer -> modules of the package it must not import
FORBIDDEN = {
    "kernels": ("algo", "pipeline", "optimize", "analysis", "research", "data"),
    "pipeline": ("algo", "analysis", "research"),
}


def _imports(path, source=None):
    """Package-relative module names imported by a file (``..algo`` -> ``algo``)."""
    tree = ast.parse(path.read_text() if source is None else source)
    depth = len(path.relative_to(PACKAGE).parts) - 1
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(path.relative_to(PACKAGE).parts[:depth - node.level + 1])
                name = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("zipline_factorarb."):
                name = node.module.split(".", 1)[1]
            else:
                continue
            yield name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("zipline_factorarb."):
                    yield alias.name.split(".", 1)[1]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_upward_import(layer):
    bad = [(str(p.relative_to(PACKAGE)), name)
           for p in sorted((PACKAGE / layer).glob("*.py"))
           for name in _imports(p)
           if name.split(".")[0] in FORBIDDEN[layer]]
    assert not bad, f"{layer} imports a higher layer: {bad}"


def test_the_check_sees_an_upward_import():
    """The walker resolves a relative ``from ..algo import x`` to ``algo``."""
    source = "from ..algo import SAMPLING_FREQUENCIES\nfrom .sampling import X\n"
    assert list(_imports(PACKAGE / "pipeline" / "signals.py", source)) == [
        "algo", "pipeline.sampling"]


def _string_literals(path):
    """Every string constant and f-string fragment of a file, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            yield node.lineno, node.value


def test_record_names_come_from_the_records_module():
    """Algorithms and the report spell no record name themselves (parameter names such as
    ``gross_exposure`` or ``n_long`` of an algorithm's PARAMS are not checked)."""
    from zipline_factorarb import records

    prefixes = (records.FACTOR_EXPOSURE, records.SECTOR_WEIGHT,
                records.BENCHMARK_SECTOR_WEIGHT, records.RISK_CONTRIBUTION)
    names = {records.EX_ANTE_TEV, records.NET_EXPOSURE, records.N_HOLDINGS,
             records.OPTIMIZER_FAILURE, records.OPTIMIZER_FAILURE_REASON,
             records.EXPECTED_COST, records.EXPECTED_BORROW_COST, records.REALISED_COST,
             records.TRACKED_BENCHMARK_RETURN}
    files = [*sorted((PACKAGE.parent / "algorithms").glob("*.py")),
             *sorted((PACKAGE / "analysis").glob("*.py")),
             PACKAGE / "optimize" / "records.py", PACKAGE / "optimize" / "orders.py",
             PACKAGE / "algo.py", PACKAGE / "cli.py"]
    bad = [(f"{p.relative_to(PACKAGE.parent)}:{line}", text)
           for p in files for line, text in _string_literals(p)
           if text in names or text.startswith(prefixes)]
    assert not bad, f"record names spelled out instead of zipline_factorarb.records: {bad}"
