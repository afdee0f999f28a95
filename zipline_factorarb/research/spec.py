"""Sweep specifications: what to run, read from YAML or TOML.

A spec names an algorithm file, a bundle, the backtest window(s) and a grid
of parameter values; every grid point is run on every fold. Example (YAML)::

    algorithm: algorithms/sector_momentum.py
    bundle: factorarb-sample
    capital_base: 1000000
    walk_forward: {train_years: 3, test_years: 1, folds: 10, start: 2005-01-01}
    grid:
      n_long: [3, 5, 8]
      lookback: [126, 252]
    params: {slippage_bps: 10.0}      # fixed overrides for every run

The same in TOML::

    algorithm = "algorithms/sector_momentum.py"
    bundle = "factorarb-sample"
    [walk_forward]
    train_years = 3
    test_years = 1
    folds = 10
    start = 2005-01-01
    [grid]
    n_long = [3, 5, 8]
    lookback = [126, 252]

Instead of ``walk_forward``, ``start`` and ``end`` give one plain backtest.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SpecError, closest_name
from .walkforward import (FOLD_PARAMS, calendar_sessions, parse_day, parse_int, single_period,
                          walk_forward_folds)

DEFAULT_BUNDLE = "factorarb-sample"
DEFAULT_CAPITAL = 1_000_000.0

_KEYS = {
    "algorithm": "algorithm file (.py) run with zipline, required",
    "bundle": f"bundle name (default {DEFAULT_BUNDLE})",
    "capital_base": "starting capital (default 1e6)",
    "start": "first day of a single backtest (instead of walk_forward)",
    "end": "last day of a single backtest (instead of walk_forward)",
    "walk_forward": "mapping: train_years, test_years, folds, start and/or end",
    "grid": "mapping: parameter name -> list of values",
    "params": "mapping: fixed parameter overrides for every run",
    "zipline_root": "ZIPLINE_ROOT that every worker reads the bundle from",
    "extensions": "zipline extensions to load in the workers (files or modules)",
    "calendar": "trading calendar of the bundle (default XNYS)",
    "seed": "random seed set before every run (default 0)",
    "keep_perf": "keep each run's perf DataFrame as a pickle (default false)",
    "out": "results folder (default sweeps/<spec name>)",
    "report": "mapping: metric (default sharpe), heatmaps: list of [param_a, param_b]",
    "name": "sweep name (default: the spec file's stem)",
}
_WALK_FORWARD_KEYS = ("train_years", "test_years", "train_months", "test_months", "folds",
                      "start", "end")

#: Columns of the results table; grid parameters must not reuse these names.
RESULT_COLUMNS = (
    "run_id", "status", "fold", "train_start", "train_end", "test_start", "test_end",
    "sharpe", "total_return", "annual_return", "annual_volatility", "max_drawdown",
    "annual_turnover", "tracking_error", "information_ratio", "benchmark_total_return",
    "psr", "daily_sharpe", "returns_skew", "returns_kurtosis",
    "n_trades", "n_sessions", "wall_time_s", "error", "traceback", "params", "algorithm",
    "algorithm_sha256", "bundle", "ingestion", "capital_base", "seed", "worker",
)

#: Results columns a report can summarise (``report: {metric: ...}``).
_METRICS = ("sharpe", "total_return", "annual_return", "annual_volatility", "max_drawdown",
            "annual_turnover", "tracking_error", "information_ratio", "benchmark_total_return",
            "psr", "daily_sharpe", "returns_skew", "returns_kurtosis", "n_trades", "n_sessions",
            "wall_time_s")


def read_spec_file(path):
    """The raw mapping in a YAML (``.yaml``/``.yml``), TOML or JSON spec file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not a text file (UTF-8): byte {exc.start} cannot be read; "
                        "a spec is YAML, TOML or JSON text") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc}") from None
    if "\x00" in text:
        raise SpecError(f"{path}: not a text file (it holds NUL bytes); a spec is YAML, TOML or "
                        "JSON text")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        elif suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                try:
                    import tomli as tomllib
                except ModuleNotFoundError:
                    raise SpecError(
                        f"{path}: TOML specs need Python 3.11+ or `pip install tomli`; "
                        "or write the spec in YAML"
                    ) from None
            raw = tomllib.loads(text)
        elif suffix == ".json":
            raw = json.loads(text)
        else:
            raise SpecError(f"{path}: unknown spec format {suffix!r}; use .yaml, .yml, .toml "
                            "or .json")
    except SpecError:
        raise
    except Exception as exc:  # parser errors carry line numbers
        raise SpecError(f"{path}: cannot parse the spec: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a mapping of keys (algorithm, bundle, ...)")
    return raw


def declared_params(source, filename="<algorithm>"):
    """The defaults an algorithm declares with ``algorithm_params({...})``.

    Read from the source without running it when the defaults are a dict
    literal; otherwise the module is executed once (with no overrides) and
    the defaults passed to :func:`zipline_factorarb.algo.algorithm_params` are
    captured. Returns ``None`` when the algorithm declares no parameters.
    """
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise SpecError(f"algorithm {filename} has a syntax error: {exc}") from None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name != "algorithm_params":
            continue
        try:
            return dict(ast.literal_eval(node.args[0]))
        except (ValueError, TypeError, SyntaxError):
            return _captured_params(source, filename)
    return None


def _captured_params(source, filename):
    """Run the module once with no overrides and capture its declared defaults."""
    from .. import algo as algo_module
    from .runner import load_algorithm

    captured = {}
    original = algo_module.algorithm_params

    def capture(defaults, environ=None):
        captured.update(defaults)
        return original(defaults, environ={})

    algo_module.algorithm_params = capture
    try:
        load_algorithm(source, filename)  # no overrides; the module is not kept
    except Exception as exc:
        raise SpecError(f"could not read the parameters of {filename}: importing it raised "
                        f"{type(exc).__name__}: {exc}") from None
    finally:
        algo_module.algorithm_params = original
    return captured or None


def _jsonable(value, where):
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: {value!r} is not a plain value (number, string, bool, "
                        "list, mapping)") from None
    return value


def stable_hash(obj, length=16):
    """Hex digest of the canonical JSON of ``obj`` (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass
class SweepSpec:
    """A parameter sweep: algorithm x bundle x folds x grid.

    Build it with :meth:`from_file` or :meth:`from_dict`; see the module
    docstring for the keys. ``folds`` are computed on the trading calendar.
    """

    algorithm: Path
    folds: list
    grid: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    bundle: str = DEFAULT_BUNDLE
    capital_base: float = DEFAULT_CAPITAL
    zipline_root: str | None = None
    extensions: list = field(default_factory=list)
    calendar: str = "XNYS"
    seed: int = 0
    keep_perf: bool = False
    out: str | None = None
    report: dict = field(default_factory=dict)
    name: str = "sweep"
    raw: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_file(cls, path, sessions=None):
        """Read a YAML / TOML / JSON spec; relative paths are resolved from it."""
        path = Path(path)
        raw = read_spec_file(path)
        raw.setdefault("name", path.stem)
        return cls.from_dict(raw, base_dir=path.parent, sessions=sessions)

    @classmethod
    def from_dict(cls, raw, base_dir=None, sessions=None):
        """Validate a spec mapping.

        Parameters
        ----------
        raw : dict
            The keys listed in the module docstring.
        base_dir : path, optional
            Folder the spec came from: a relative ``algorithm`` is looked up
            there first, then in the current folder.
        sessions : pandas.DatetimeIndex, optional
            Trading sessions (default: the spec's ``calendar``).
        """
        raw = dict(raw)
        unknown = [k for k in raw if k not in _KEYS]
        if unknown:
            k = unknown[0]
            raise SpecError(f"unknown spec key {k!r}{closest_name(k, _KEYS)}; the keys are: "
                            + ", ".join(f"{name} ({what})" for name, what in _KEYS.items()))
        if "algorithm" not in raw:
            raise SpecError("the spec needs `algorithm: path/to/algorithm.py`")
        _check_types(raw)
        algorithm = _resolve_algorithm(raw["algorithm"], base_dir)

        calendar = str(raw.get("calendar", "XNYS"))
        if sessions is None:
            try:
                sessions = calendar_sessions(calendar)
            except Exception as exc:  # exchange_calendars' InvalidCalendarName
                raise SpecError(f"calendar: {calendar!r} is not a trading calendar "
                                f"({type(exc).__name__}); e.g. XNYS") from None
        folds = _folds_from(raw, sessions)

        # the types of `grid` and `params` are checked by _check_types
        grid = {str(k): (list(v) if isinstance(v, (list, tuple)) else [v])
                for k, v in (raw.get("grid") or {}).items()}
        for name, values in grid.items():
            if not values:
                raise SpecError(f"grid: parameter {name!r} has no values; give a list such as "
                                f"{name}: [1, 2]")
            for v in values:
                _jsonable(v, f"grid.{name}")
        params = raw.get("params") or {}
        for k, v in params.items():
            _jsonable(v, f"params.{k}")

        extensions = raw.get("extensions") or []
        if isinstance(extensions, str):
            extensions = [extensions]
        resolved_ext = []
        for ext in extensions:
            ext = str(ext)
            if ext.endswith(".py"):
                p = Path(ext).expanduser()
                if not p.is_absolute() and base_dir is not None and (Path(base_dir) / p).exists():
                    p = Path(base_dir) / p
                ext = str(p.resolve())
            resolved_ext.append(ext)

        report = raw.get("report") or {}
        if not isinstance(report, dict):
            raise SpecError("`report` must be a mapping, e.g. report: {metric: sharpe}")

        capital = float(raw.get("capital_base", DEFAULT_CAPITAL))

        spec = cls(
            algorithm=algorithm, folds=folds, grid=grid, params=dict(params),
            bundle=str(raw.get("bundle", DEFAULT_BUNDLE)), capital_base=capital,
            zipline_root=(str(Path(raw["zipline_root"]).expanduser())
                          if raw.get("zipline_root") else None),
            extensions=resolved_ext, calendar=calendar, seed=int(raw.get("seed", 0)),
            keep_perf=bool(raw.get("keep_perf", False)), out=raw.get("out"),
            report=dict(report), name=str(raw.get("name", "sweep")), raw=raw,
        )
        spec._check_params()
        return spec

    # ------------------------------------------------------------ algorithm
    @property
    def algorithm_source(self):
        """The algorithm file's text (what the workers execute)."""
        return self.algorithm.read_text()

    @property
    def algorithm_sha256(self):
        """SHA-256 of the algorithm file's content (part of each run id)."""
        return hashlib.sha256(self.algorithm.read_bytes()).hexdigest()

    @property
    def declared(self):
        """The algorithm's declared parameter defaults (``None`` if none)."""
        if not hasattr(self, "_declared"):
            self._declared = declared_params(self.algorithm_source, str(self.algorithm))
        return self._declared

    def _check_params(self):
        declared = self.declared
        for where, names in (("grid", self.grid), ("params", self.params)):
            for name in names:
                if name in FOLD_PARAMS:
                    raise SpecError(f"{where}: {name!r} is set from each fold; remove it from "
                                    f"`{where}` and define the folds with `walk_forward`")
                if where == "grid" and name in RESULT_COLUMNS:
                    raise SpecError(f"grid parameter {name!r} has the name of a result "
                                    "column; rename the parameter in the algorithm")
                if declared is None:
                    raise SpecError(
                        f"{where}: {self.algorithm.name} declares no parameters; declare "
                        "defaults with zipline_factorarb.algo.algorithm_params({...}) at "
                        "module level to sweep them"
                    )
                if name not in declared:
                    raise SpecError(
                        f"{where}: unknown parameter {name!r}{closest_name(name, declared)}; "
                        f"{self.algorithm.name} takes {sorted(declared)}"
                    )
        both = set(self.grid) & set(self.params)
        if both:
            raise SpecError(f"parameter {sorted(both)[0]!r} is in both `grid` and `params`; "
                            "keep it in one")

    # ------------------------------------------------------------------ runs
    def grid_points(self):
        """Every combination of grid values, in the spec's order (a list of dicts)."""
        names = list(self.grid)
        return [dict(zip(names, values))
                for values in itertools.product(*(self.grid[n] for n in names))]

    def runs(self, ingestion=None, zipline_root=None):
        """One task per grid point x fold, each with a stable ``run_id``.

        The id hashes the algorithm file's content, the bundle and its
        ingestion, the full parameter overrides, the fold's dates, the capital
        and the seed: the same spec on the same data gives the same ids, so a
        resumed sweep recognises finished runs.
        """
        source = self.algorithm_source
        sha = self.algorithm_sha256
        declared = self.declared or {}
        tasks = []
        for point in self.grid_points():
            for fold in self.folds:
                overrides = {**self.params, **point, **fold.algorithm_params(declared)}
                if "seed" in declared and "seed" not in overrides:
                    overrides["seed"] = self.seed
                identity = dict(algorithm_sha256=sha, bundle=self.bundle, ingestion=ingestion,
                                params=overrides, fold=fold.to_dict(),
                                capital_base=self.capital_base, seed=self.seed)
                # the task carries its identity plus what the worker needs to run it
                tasks.append(dict(
                    identity, run_id=stable_hash(identity), algorithm=self.algorithm.name,
                    algorithm_source=source, grid=point, calendar=self.calendar,
                    extensions=list(self.extensions), zipline_root=zipline_root,
                    keep_perf=self.keep_perf))
        return tasks

    def describe(self):
        """A few lines for the user: what will run."""
        lines = [f"algorithm {self.algorithm}", f"bundle {self.bundle}",
                 f"{len(self.grid_points())} grid point(s) x {len(self.folds)} fold(s) = "
                 f"{len(self.grid_points()) * len(self.folds)} run(s)"]
        for name, values in self.grid.items():
            lines.append(f"  {name}: {values}")
        for fold in self.folds:
            lines.append(f"  {fold}")
        return "\n".join(lines)


def _text(raw, key, where=None):
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where or key}: {value!r} is not a non-empty text; e.g. "
                        f"{_EXAMPLES.get(key, 'a name')}")


_EXAMPLES = {"algorithm": "algorithms/sector_momentum.py", "bundle": "factorarb-sample",
             "calendar": "XNYS", "out": "sweeps/momentum", "zipline_root": "~/.zipline",
             "name": "momentum"}


def _check_types(raw):
    """Check every key's type and value; :class:`SpecError` naming the key.

    One place for the spec's value rules: texts, dates (``YYYY-MM-DD``
    only), integers (not bools, fractions or text), booleans, the capital,
    the mappings (``grid``, ``params``, ``walk_forward``, ``report``) and
    their keys.
    """
    for key in ("algorithm", "bundle", "calendar", "name"):
        if key in raw:
            _text(raw, key)
    for key in ("out", "zipline_root"):
        if raw.get(key) is not None:
            _text(raw, key)
    if "calendar" in raw:
        import exchange_calendars

        names = exchange_calendars.get_calendar_names(include_aliases=True)
        if raw["calendar"] not in names:
            raise SpecError(f"calendar: {raw['calendar']!r} is not a trading calendar"
                            f"{closest_name(raw['calendar'], names)}; e.g. XNYS")
    for key in ("start", "end"):
        if key in raw:
            parse_day(raw[key], key)
    if "start" in raw and "end" in raw and parse_day(raw["end"], "end") < parse_day(
            raw["start"], "start"):
        raise SpecError(f"end: {raw['end']} is before start {raw['start']}")
    if "seed" in raw:
        parse_int(raw["seed"], "seed", minimum=0)
    if "keep_perf" in raw and not isinstance(raw["keep_perf"], bool):
        raise SpecError(f"keep_perf: {raw['keep_perf']!r} is not true or false")
    if "capital_base" in raw:
        c = raw["capital_base"]
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) \
                or c <= 0:
            raise SpecError(f"capital_base: {c!r} is not a positive number")
    ext = raw.get("extensions")
    if ext is not None and not isinstance(ext, str) and not (
            isinstance(ext, list) and all(isinstance(e, str) and e for e in ext)):
        raise SpecError(f"extensions: {ext!r} is not a file or module name or a list of them")
    for key in ("grid", "params"):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise SpecError(f"{key}: must map parameter names to "
                            + ("lists of values, e.g. grid: {n_long: [3, 5]}" if key == "grid"
                               else "values, e.g. params: {slippage_bps: 10.0}"))
        for name in value:
            if not isinstance(name, str):
                raise SpecError(f"{key}: parameter name {name!r} is not text")
    wf = raw.get("walk_forward")
    if isinstance(wf, dict):
        for key in ("train_years", "test_years", "train_months", "test_months"):
            if wf.get(key) is not None:
                parse_int(wf[key], f"walk_forward: {key}", minimum=0)
        if wf.get("folds") is not None:
            parse_int(wf["folds"], "walk_forward: folds", minimum=1)
        for key in ("start", "end"):
            if wf.get(key) is not None:
                parse_day(wf[key], f"walk_forward: {key}")
    report = raw.get("report")
    if isinstance(report, dict):
        unknown = [k for k in report if k not in _REPORT_KEYS]
        if unknown:
            k = unknown[0]
            raise SpecError(f"report: unknown key {k!r}{closest_name(k, _REPORT_KEYS)}; the keys "
                            f"are {list(_REPORT_KEYS)}")
        if "metric" in report and (not isinstance(report["metric"], str)
                                   or report["metric"] not in _METRICS):
            metric = report["metric"]
            raise SpecError(f"report: metric {metric!r} is not a numeric results column"
                            f"{closest_name(metric, _METRICS)}; use one of {list(_METRICS)}")
        pairs = report.get("heatmaps")
        if pairs is not None and not (isinstance(pairs, list) and all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(n, str) for n in p)
                for p in pairs)):
            raise SpecError(f"report: heatmaps {pairs!r} must be a list of parameter pairs, "
                            "e.g. heatmaps: [[n_long, lookback]]")


_REPORT_KEYS = ("metric", "heatmaps")


def _resolve_algorithm(value, base_dir):
    p = Path(str(value)).expanduser()
    candidates = [p] if p.is_absolute() else (
        ([Path(base_dir) / p] if base_dir is not None else []) + [Path.cwd() / p])
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise SpecError(f"algorithm file {value!r} not found (looked at "
                    + ", ".join(str(c) for c in candidates) + ")")


def _folds_from(raw, sessions):
    wf = raw.get("walk_forward")
    single = "start" in raw or "end" in raw
    if wf is not None and single:
        raise SpecError("give either `walk_forward` or `start`/`end`, not both")
    if wf is None:
        if not ("start" in raw and "end" in raw):
            raise SpecError("the spec needs dates: `start` and `end` for one backtest, or "
                            "`walk_forward: {train_years: 3, test_years: 1, folds: 10, "
                            "start: 2012-01-01}`")
        return single_period(sessions, raw["start"], raw["end"])
    if not isinstance(wf, dict):
        raise SpecError("`walk_forward` must be a mapping such as {train_years: 3, "
                        "test_years: 1, folds: 10, start: 2012-01-01}")
    unknown = [k for k in wf if k not in _WALK_FORWARD_KEYS]
    if unknown:
        k = unknown[0]
        raise SpecError(f"walk_forward: unknown key {k!r}{closest_name(k, _WALK_FORWARD_KEYS)}; "
                        f"the keys are {list(_WALK_FORWARD_KEYS)}")
    return walk_forward_folds(
        sessions, train_years=wf.get("train_years", 3), test_years=wf.get("test_years", 1),
        n_folds=wf.get("folds"), start=wf.get("start"), end=wf.get("end"),
        train_months=wf.get("train_months"), test_months=wf.get("test_months"),
    )


def load_spec(spec, sessions=None):
    """A :class:`SweepSpec` from a path, a mapping or a spec (returned as is)."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return SweepSpec.from_dict(spec, sessions=sessions)
    return SweepSpec.from_file(spec, sessions=sessions)


__all__ = ["SweepSpec", "load_spec", "declared_params", "stable_hash", "RESULT_COLUMNS"]
