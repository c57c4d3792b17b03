"""The TOML scenario schema and its validation.

Validation runs in two passes and reports every problem it finds, each as ``path: message``:

1. **shape**: pydantic (strict types, no unknown keys) over the whole file;
2. **meaning**: for every section that passed the first pass, cross-checks that need the rest of
   the scenario or a pandapower net (buses exist, road graph connected, SOC windows, profiles,
   policy parameters).

Both passes run even if the first finds problems, so one run lists them all. Scenario files are
data: they are parsed with :mod:`tomllib` and never executed. A profile may come from a CSV file
(``load_shape = { csv = "profiles.csv", column = "dn1" }``, a path relative to the scenario
file); it is read with the :mod:`csv` module before both passes, every bad cell is reported with
its file, column and row, and the values replace the table, so a run's ``config.toml`` holds them.
"""

from __future__ import annotations

import csv
import difflib
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.errors import ScenarioError

# ----------------------------------------------------------------------------- schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


class ScenarioMeta(_Strict):
    name: str
    description: str = ""
    seed: int = Field(0, ge=0)
    step_min: int = Field(60, ge=1, le=1440)
    horizon_min: int = Field(1440, ge=1)


class PolicyConfig(_Strict):
    name: str = "greedy"
    params: dict[str, Any] = Field(default_factory=dict)


class CompareConfig(_Strict):
    """Other policies run on the same scenario, seed and realisation (common random numbers)."""

    policies: list[str] = Field(default_factory=list)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)


class UncertaintyConfig(_Strict):
    """Actual profiles = forecast with AR(1) noise (MODELS.md A.10.1). Zero sigmas: no noise.

    ``rho`` is the hour-to-hour autocorrelation; with other step lengths it becomes
    ``rho ** (step_min / 60)`` per step, so the noise has the same time structure at any step.

    Vehicles (agents/disruption.py; off by default): ``travel_sigma`` is the log-sigma of the
    traffic delay factor ``max(1, exp(sigma z))`` per edge and step of entry, applied to the
    free-flow ``travel_min`` and rounded up to whole minutes; ``breakdown_prob_per_day`` is each
    vehicle's chance of a breakdown per day, which keeps it out of service for
    ``breakdown_duration_min`` (a whole number of steps). Policies plan on the free-flow graph.
    """

    load_sigma: float = Field(0.0, ge=0, le=1)
    pv_sigma: float = Field(0.0, ge=0, le=2)
    rho: float = Field(0.8, ge=0, lt=1)
    load_corr: float = Field(0.5, ge=0, le=1)
    pv_corr: float = Field(0.8, ge=0, le=1)
    travel_sigma: float = Field(0.0, ge=0, le=2)
    breakdown_prob_per_day: float = Field(0.0, ge=0, le=1)
    breakdown_duration_min: int = Field(0, ge=0)


class PowerFlowConfig(_Strict):
    algorithm: Literal["nr", "iwamoto_nr", "bfsw", "gs", "fdbx", "fdxb"] = "nr"
    tolerance_mva: float = Field(1e-8, gt=0)
    max_iteration: int = Field(20, ge=1)
    vm_min_pu: float = Field(0.95, gt=0)
    vm_max_pu: float = Field(1.05, gt=0)
    loading_max_pct: float = Field(100.0, gt=0)
    #: What a power flow that does not converge after every retry does to the run: ``continue``
    #: (recorded and counted), ``mark`` (also flags the run in ``meta.json``) or ``stop`` (the run
    #: ends at that step and its directory says ``stopped``).
    on_failure: Literal["continue", "mark", "stop"] = "continue"
    #: Power-flow path: plain ``runpp``, or repeated Newton-Raphson on the cached Ybus
    #: (``ybus`` NumPy, ``lightsim2grid`` C++); see grids/fastpf.py.
    backend: Literal["runpp", "ybus", "lightsim2grid"] = "lightsim2grid"


class EdgeConfig(_Strict):
    from_: str = Field(alias="from")
    to: str
    travel_min: int = Field(ge=1)
    dist_km: float = Field(0.0, ge=0)
    energy_mwh: float = Field(0.0, ge=0)


class RoadConfig(_Strict):
    kind: Literal["road", "rail"] = "road"
    symmetric: bool = True
    nodes: list[str]
    edges: list[EdgeConfig]


class PVConfig(_Strict):
    bus: int = Field(ge=0)
    share: float = Field(gt=0, le=1)


class GeneratorConfig(_Strict):
    name: str
    bus: int = Field(ge=0)
    p_max_mw: float = Field(gt=0)
    p_min_mw: float = Field(ge=0)
    ramp_up_mw_per_h: float = Field(gt=0)
    ramp_down_mw_per_h: float = Field(gt=0)


class DRConfig(_Strict):
    bus: int = Field(ge=0)
    p_max_mw: float = Field(gt=0)
    ramp_mw_per_h: float = Field(gt=0)
    e_max_mwh: float = Field(ge=0)


class StorageConfig(_Strict):
    bus: int = Field(ge=0)
    p_ch_max_mw: float = Field(gt=0)
    p_dis_max_mw: float = Field(gt=0)
    e_min_mwh: float = Field(ge=0)
    e_max_mwh: float = Field(gt=0)
    e_init_mwh: float = Field(ge=0)
    eta: float = Field(0.95, gt=0, le=1)


class GridConfig(_Strict):
    node: str
    feeder: str
    peak_load_mw: float = Field(gt=0)
    load_shape: Any  # a named shape or a list of p.u. values (checked in the second pass)
    load_resolution_min: int = Field(60, ge=1)
    pv_cap_mw: float = Field(0.0, ge=0)
    pv_shape: Any = "solar"
    pv_resolution_min: int = Field(60, ge=1)
    pv: list[PVConfig] = Field(default_factory=list)
    mess_bus: int = Field(ge=0)
    generators: list[GeneratorConfig] = Field(default_factory=list)
    dr: DRConfig | None = None
    storage: StorageConfig | None = None


class DegradationConfig(BaseModel):
    """A battery ageing model of :mod:`agents.degradation` and its parameters.

    ``model`` is ``none`` (no ageing: SOH stays 1.0), ``nmc``, ``lfp``, ``generalised`` or
    ``dod_curve``; every other key is a parameter of that model (``temp_c``, ``soh_eol_frac``,
    ``cycle_model`` ...; see :func:`agents.degradation.model_parameters`), checked in the second
    pass by :func:`degradation_field_problems`. For example
    ``degradation = { model = "lfp", temp_c = 30.0 }``.
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    model: str = "none"

    @property
    def params(self) -> dict[str, Any]:
        """The model's parameters (every key but ``model``)."""
        return dict(self.model_extra or {})


class VehicleConfig(_Strict):
    """One vehicle. ``degradation`` (default: none, no ageing) is the model its battery is fed
    every engine step; the SOH it gives is recorded as ``soh_frac`` in ``vehicles`` and does not
    change the usable energy window (reported only; see :class:`agents.battery.Battery`)."""

    name: str
    kind: Literal["truck", "train"] = "truck"
    start: str
    capacity_mwh: float = Field(gt=0)
    e_min_mwh: float = Field(ge=0)
    e_max_mwh: float = Field(gt=0)
    e_init_mwh: float = Field(ge=0)
    p_max_mw: float = Field(gt=0)
    eta_ch: float = Field(0.95, gt=0, le=1)
    eta_dis: float = Field(0.95, gt=0, le=1)
    retention_per_h: float = Field(0.999, gt=0, le=1)
    degradation: DegradationConfig | None = None


class StudyConfig(_Strict):
    """Settings of the seed-000 SFI study (``mescosim run sfi``), MODELS.md A.6-A.10.

    ``kappa`` is the deficit requirement of A.6: it decides whether the vehicles move at all.
    """

    kappa: float = Field(0.5, gt=0)
    alpha: float = Field(1.0, ge=0)
    beta: float = Field(1.0, ge=0)
    eps: float = Field(1e-3, gt=0)
    n_scenarios: int = Field(1000, ge=1)
    n_reduced: int = Field(50, ge=1)
    stochastic_method: Literal["exact", "candidates"] = "exact"
    exact_time_limit_s: float = Field(120.0, gt=0)
    exact_gap: float = Field(5e-3, gt=0, lt=1)
    kappa_sweep: list[float] = Field(default_factory=lambda: [0.2, 0.3, 0.4, 0.5, 0.6, 0.8])
    solver: Literal["highs", "cbc"] = "highs"
    mip_gap: float = Field(1e-3, gt=0, lt=1)
    stochastic_mip_gap: float = Field(1e-2, gt=0, lt=1)
    sweep_mip_gap: float | None = Field(None, gt=0, lt=1)
    time_limit_s: float = Field(300.0, gt=0)
    workers: int = Field(2, ge=1)
    validate_plan: bool = True


class Config(_Strict):
    scenario: ScenarioMeta
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    uncertainty: UncertaintyConfig = Field(default_factory=UncertaintyConfig)
    power_flow: PowerFlowConfig = Field(default_factory=PowerFlowConfig)
    road: RoadConfig
    grids: dict[str, GridConfig]
    fleet: list[VehicleConfig]
    study: StudyConfig | None = None

    def policy_runs(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, params) of the main policy followed by every comparison policy."""
        runs = [(self.policy.name, dict(self.policy.params))]
        for name in self.compare.policies:
            if name != self.policy.name:
                runs.append((name, dict(self.compare.params.get(name, {}))))
        return runs

    def to_toml_dict(self) -> dict[str, Any]:
        """The resolved scenario as plain data (what ``config.toml`` in a run directory holds)."""
        return self.model_dump(by_alias=True, exclude_none=True)


# ----------------------------------------------------------------------------- errors


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


def _message(err: dict, model_fields: dict[tuple, list[str]]) -> str:
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    if kind == "extra_forbidden":
        known = model_fields.get(tuple(err["loc"][:-1]), [])
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "finite_number":
        return f"must be finite, got {value!r}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
              "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {bounds[kind]} {limit}, got {value!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {value!r}"
    expected = {"int_type": "an integer", "float_type": "a number", "string_type": "a string",
                "bool_type": "a boolean", "list_type": "an array", "dict_type": "a table",
                "model_type": "a table", "int_from_float": "an integer"}
    if kind in expected:
        return f"expected {expected[kind]}, got {_type_name(value)} {value!r}"
    return err["msg"]


def _known_fields(model: type[BaseModel], raw: Any, loc: tuple = ()) -> dict[tuple, list[str]]:
    """Field names (by alias) of every sub-model in ``raw``, for "did you mean" hints."""
    out = {loc: [f.alias or n for n, f in model.model_fields.items()]}
    if not isinstance(raw, dict):
        return out
    for name, field in model.model_fields.items():
        key = field.alias or name
        sub = raw.get(key)
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        targets = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if targets and isinstance(sub, dict):
            out.update(_known_fields(targets[0], sub, loc + (key,)))
        inner = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if inner and isinstance(sub, list):
            for i, item in enumerate(sub):
                out.update(_known_fields(inner[0], item, loc + (key, i)))
        if inner and isinstance(sub, dict) and getattr(ann, "__origin__", None) is dict:
            for k, item in sub.items():
                out.update(_known_fields(inner[0], item, loc + (key, k)))
    return out


def shape_problems(raw: dict) -> tuple[Config | None, list[str]]:
    """First pass: parse ``raw`` into :class:`Config`, or return every shape problem."""
    try:
        return Config.model_validate(raw), []
    except ValidationError as exc:
        fields = _known_fields(Config, raw)
        return None, [f"{_path(tuple(e['loc']))}: {_message(e, fields)}" for e in exc.errors()]


def _try(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _number_list_problems(values: Any, path: str) -> list[str]:
    if not isinstance(values, list) or not values:
        return [f"{path}: expected a shape name or a non-empty array of numbers"]
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            out.append(f"{path}[{i}]: expected a number, got {_type_name(v)} {v!r}")
        elif not math.isfinite(v):
            out.append(f"{path}[{i}]: must be finite, got {v!r}")
        elif v < 0:
            out.append(f"{path}[{i}]: must be >= 0, got {v!r}")
    return out


def nonfinite_problems(raw: Any, path: str = "") -> list[str]:
    """``path: must be finite, got inf`` for every infinite or NaN number anywhere in ``raw``
    (TOML allows ``inf`` and ``nan``; no scenario value may be either)."""
    if isinstance(raw, float) and not math.isfinite(raw):
        return [f"{path or '<root>'}: must be finite, got {raw!r}"]
    out: list[str] = []
    if isinstance(raw, dict):
        for key, value in raw.items():
            out += nonfinite_problems(value, f"{path}.{key}" if path else str(key))
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            out += nonfinite_problems(value, f"{path}[{i}]")
    return out


#: The longest horizon a run takes (a leap year): longer ones are refused before they run.
MAX_HORIZON_MIN = 366 * 1440


def study_problems(raw: Any) -> list[str]:
    """Cross-checks of a ``[study]`` section whose shape is valid (the values the seed-000 study
    would otherwise reject only once it runs)."""
    study = _try(StudyConfig, raw)
    if study is None:
        return []
    out = []
    for i, k in enumerate(study.kappa_sweep):
        if not k > 0:
            out.append(f"study.kappa_sweep[{i}]: must be > 0 (a deficit requirement, like "
                       f"study.kappa), got {k!r}")
    if study.n_reduced > study.n_scenarios:
        out.append(f"study.n_reduced: {study.n_reduced} reduced scenarios from "
                   f"n_scenarios={study.n_scenarios}; must be <= n_scenarios")
    return out


#: A name that becomes part of a file or directory name: no separators, no leading dot.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
PROFILE_KEYS = ("load_shape", "pv_shape")


def _clip(text: str, n: int = 24) -> str:
    """At most ``n`` characters of a file's text in a message."""
    return text if len(text) <= n else text[:n - 3] + "..."


def _cell_problem(cell: str) -> tuple[float | None, str | None]:
    """A CSV cell as a number, or why it is not a usable profile value."""
    text = cell.strip()
    if not text:
        return None, "empty cell"
    try:
        v = float(text)
    except ValueError:
        return None, f"not a number {_clip(text)!r}"
    if math.isnan(v):
        return None, "NaN"
    if math.isinf(v):
        return None, f"{'-' if v < 0 else ''}inf"
    if v < 0:
        return None, f"negative value {v!r} (profiles are p.u. and must be >= 0)"
    return v, None


def read_profile_csv(spec: Any, base: Path, path: str) -> tuple[list[float] | None, list[str]]:
    """Read ``{csv = FILE, column = NAME}`` into a list of values, or list every problem.

    ``FILE`` is relative to ``base`` (the scenario's folder). Rows are counted from 1 for the
    first row under the header line. Only ``.csv`` files are read, with the :mod:`csv` module.
    """
    if not isinstance(spec, dict):
        return None, [f"{path}: expected a table {{ csv = FILE, column = NAME }}"]
    out = [f"{path}.{k}: unknown key (a CSV profile takes csv and column)"
           for k in spec if k not in ("csv", "column")]
    name, col = spec.get("csv"), spec.get("column")
    if not isinstance(name, str) or not name:
        out.append(f"{path}.csv: expected a file name, got {_type_name(name)} {name!r}"
                   if name is not None else f"{path}.csv: required key is missing")
    if not isinstance(col, str) or not col:
        out.append(f"{path}.column: expected a column name, got {_type_name(col)} {col!r}"
                   if col is not None else f"{path}.column: required key is missing")
    if out:
        return None, out
    file = Path(name)
    if file.suffix.lower() != ".csv":
        return None, [f"{path}.csv: profile files must be .csv, got {name!r}"]
    full = file if file.is_absolute() else base / file
    try:
        real = full.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        real = full
    if full.is_symlink() and real.suffix.lower() != ".csv":
        # never read (and so never echo) a file that is not a profile, e.g. a system file
        return None, [f"{path}.csv: {name} is a link to a file that is not .csv; profile files "
                      f"must be .csv files"]
    if full.exists() and not real.is_file():
        return None, [f"{path}.csv: {name} is not a regular file"]
    try:
        with open(full, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        return None, [f"{path}.csv: cannot read {name} ({why})"]
    if not rows:
        return None, [f"{path}.csv: {name} is empty (expected a header line and values)"]
    header = [h.strip() for h in rows[0]]
    if col not in header:
        shown = ", ".join(_clip(h) for h in header[:20]) + (", ..." if len(header) > 20 else "")
        return None, [f"{path}.column: no column {col!r} in {name} "
                      f"(columns: {shown or 'none'})"]
    j = header.index(col)
    values, bad = [], []
    for r, row in enumerate(rows[1:], start=1):
        if not any(c.strip() for c in row):
            continue  # a blank line (e.g. at the end of the file)
        v, why = _cell_problem(row[j]) if j < len(row) else (None, "missing cell")
        if why:
            bad.append(f"{path}: {name}, column {col!r}, row {r}: {why}")
        else:
            values.append(v)
    if len(bad) > 5:  # one line per bad cell, but not thousands
        bad = bad[:5] + [f"{path}: {name}, column {col!r}: {len(bad) - 5} more bad cells"]
    if not bad and not values:
        bad.append(f"{path}: {name}, column {col!r} has no values")
    return (None, bad) if bad else (values, [])


def resolve_profiles(raw: dict, base: Path) -> tuple[dict, list[str]]:
    """Replace every CSV profile table by its values; return the new raw dict and problems.

    A profile that cannot be read stays a table, which the later passes skip (its problems are
    reported here, once).
    """
    grids = raw.get("grids")
    if not isinstance(grids, dict):
        return raw, []
    out: list[str] = []
    new_grids = {}
    for gname, graw in grids.items():
        if isinstance(graw, dict):
            graw = dict(graw)
            for key in PROFILE_KEYS:
                if isinstance(graw.get(key), dict):
                    values, problems = read_profile_csv(graw[key], base, f"grids.{gname}.{key}")
                    out += problems
                    if values is not None:
                        graw[key] = values
        new_grids[gname] = graw
    return {**raw, "grids": new_grids}, out


def degradation_field_problems(raw: Any, path: str) -> list[str]:
    """``path: message`` for every problem of a ``degradation`` table's model and parameters
    (its shape, a table with a string ``model``, is checked by the first pass)."""
    from agents.degradation import degradation_problems

    if not isinstance(raw, dict) or not isinstance(raw.get("model", "none"), str):
        return []  # reported by the first pass
    params = {k: v for k, v in raw.items() if k != "model"}
    out = []
    for key, msg in degradation_problems(raw.get("model", "none"), params):
        if key and msg.startswith(key + " "):
            msg = msg[len(key) + 1:]
        out.append(f"{path}.{key}: {msg}" if key else f"{path}: {msg}")
    return out


def meaning_problems(raw: dict) -> list[str]:
    """Second pass: cross-checks on every section that has a valid shape."""
    # Imported here: building feeders pulls in pandapower, which the first pass does not need.
    from agents.graph import TransportGraph
    from experiments.specs import site_spec
    from grids.profiles import SHAPES, Profile
    from grids.site import check_site_spec
    from policies.registry import policy_problems

    out: list[str] = []
    meta = _try(ScenarioMeta, raw.get("scenario"))
    if meta is not None and meta.horizon_min % meta.step_min:
        out.append(f"scenario.horizon_min: {meta.horizon_min} is not a whole number of steps of "
                   f"step_min={meta.step_min}")
        meta = None  # the profile checks below need a valid step
    if meta is not None and meta.horizon_min > MAX_HORIZON_MIN:
        out.append(f"scenario.horizon_min: {meta.horizon_min} min ({meta.horizon_min / 1440:g} "
                   f"days) is longer than the limit of {MAX_HORIZON_MIN} min (366 days); "
                   f"split the period into several runs")
        meta = None  # no profile checks over a horizon that will not run
    if meta is not None and not SAFE_NAME.match(meta.name):
        out.append(f"scenario.name: {meta.name!r} is used in file names; use letters, digits, "
                   f"'.', '_' and '-' only, starting with a letter or digit")

    road = _try(RoadConfig, raw.get("road"))
    nodes = set(road.nodes) if road else set()
    if road is not None:
        seen = set()
        for n in road.nodes:
            if n in seen:
                out.append(f"road.nodes: node {n!r} is listed twice")
            seen.add(n)
        for i, e in enumerate(road.edges):
            for end, name in (("from", e.from_), ("to", e.to)):
                if name not in nodes:
                    out.append(f"road.edges[{i}].{end}: unknown node {name!r}")

    grids_raw = raw.get("grids") if isinstance(raw.get("grids"), dict) else {}
    must_reach: list[str] = []
    grid_at: dict[str, str] = {}
    for gname, graw in grids_raw.items():
        g = _try(GridConfig, graw)
        if g is None:
            node = graw.get("node") if isinstance(graw, dict) else None
            if isinstance(node, str) and node in nodes:
                must_reach.append(node)
            continue
        path = f"grids.{gname}"
        if g.node in grid_at:
            out.append(f"{path}.node: road node {g.node!r} already connects grid "
                       f"{grid_at[g.node]!r} (one grid per node)")
        grid_at.setdefault(g.node, gname)
        if road is not None and g.node not in nodes:
            out.append(f"{path}.node: {g.node!r} is not a road node ({', '.join(road.nodes)})")
        else:
            must_reach.append(g.node)
        for key in PROFILE_KEYS:
            value = getattr(g, key)
            if isinstance(value, dict):
                continue  # a CSV profile that could not be read, reported by resolve_profiles
            if isinstance(value, str):
                if value not in SHAPES:
                    out.append(f"{path}.{key}: unknown shape {value!r}; "
                               f"known: {', '.join(sorted(SHAPES))}")
                    continue
            else:
                bad = _number_list_problems(value, f"{path}.{key}")
                out.extend(bad)
                if bad:
                    continue
            if meta is not None:
                res = g.load_resolution_min if key == "load_shape" else g.pv_resolution_min
                values = SHAPES[value] if isinstance(value, str) else value
                out.extend(Profile(tuple(values), res).problems(
                    meta.step_min, meta.horizon_min, f"{path}.{key}"))
        if g.pv_cap_mw > 0 and not g.pv:
            out.append(f"{path}.pv: pv_cap_mw is {g.pv_cap_mw} but no PV units are given")
        if not out_of_shape(g):
            try:
                spec = site_spec(gname, g, PowerFlowConfig())
            except ScenarioError as exc:
                out.extend(exc.problems)
            else:
                out.extend(check_site_spec(spec, path))

    fleet_raw = raw.get("fleet") if isinstance(raw.get("fleet"), list) else []
    names = set()
    for i, vraw in enumerate(fleet_raw):
        if isinstance(vraw, dict) and "degradation" in vraw:
            out.extend(degradation_field_problems(vraw["degradation"], f"fleet[{i}].degradation"))
        v = _try(VehicleConfig, vraw)
        if v is None:
            # Still check where it starts: the graph problem is worth reporting in this pass too.
            start = vraw.get("start") if isinstance(vraw, dict) else None
            if isinstance(start, str):
                if road is not None and start not in nodes:
                    out.append(f"fleet[{i}].start: {start!r} is not a road node")
                else:
                    must_reach.append(start)
            continue
        path = f"fleet[{i}]"
        if v.name in names:
            out.append(f"{path}.name: vehicle name {v.name!r} is used twice")
        names.add(v.name)
        if road is not None:
            if v.start not in nodes:
                out.append(f"{path}.start: {v.start!r} is not a road node")
            else:
                must_reach.append(v.start)
        if v.e_max_mwh > v.capacity_mwh:
            out.append(f"{path}.e_max_mwh: {v.e_max_mwh} exceeds capacity_mwh {v.capacity_mwh}")
        if v.e_min_mwh >= v.e_max_mwh:
            out.append(f"{path}.e_min_mwh: {v.e_min_mwh} must be < e_max_mwh {v.e_max_mwh}")
        elif not v.e_min_mwh <= v.e_init_mwh <= v.e_max_mwh:
            out.append(f"{path}.e_init_mwh: {v.e_init_mwh} is outside the usable window "
                       f"[{v.e_min_mwh}, {v.e_max_mwh}]")
    if isinstance(raw.get("fleet"), list) and not fleet_raw:
        out.append("fleet: at least one vehicle is needed")

    if road is not None and not [p for p in out if p.startswith("road.edges")]:
        graph = TransportGraph.from_edges(road.nodes, [e.model_dump(by_alias=True)
                                                       for e in road.edges],
                                          symmetric=road.symmetric, kind=road.kind)
        out.extend(graph.problems([n for n in must_reach if n in nodes], "road"))

    # what the scenario says, for the policies' own value checks (e.g. a timetable's entries)
    # (the vehicle names only when every vehicle has one: a broken entry is reported above and
    # must not make the timetable's references to it look unknown as well)
    context: dict[str, Any] = {}
    if all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in fleet_raw):
        context["vehicles"] = {v["name"] for v in fleet_raw}
    if road is not None:
        context["nodes"] = nodes
    if grids_raw:
        context["sites"] = set(grids_raw)
    if meta is not None:
        context.update(horizon_min=meta.horizon_min, step_min=meta.step_min)
    pol = _try(PolicyConfig, raw.get("policy", {}))
    if pol is not None:
        out.extend(policy_problems(pol.name, pol.params, "policy", context))
    cmp_ = _try(CompareConfig, raw.get("compare", {}))
    if cmp_ is not None:
        for i, name in enumerate(cmp_.policies):
            out.extend(policy_problems(name, cmp_.params.get(name, {}),
                                       f"compare.policies[{i}]", context))
        for name in cmp_.params:
            if name not in cmp_.policies:
                out.append(f"compare.params.{name}: {name!r} is not in compare.policies")
    unc = _try(UncertaintyConfig, raw.get("uncertainty", {}))
    if unc is not None and unc.breakdown_prob_per_day > 0:
        d = unc.breakdown_duration_min
        if d < 1:
            out.append(f"uncertainty.breakdown_duration_min: must be >= 1 when "
                       f"breakdown_prob_per_day is {unc.breakdown_prob_per_day}, got {d}")
        elif meta is not None and d % meta.step_min:
            out.append(f"uncertainty.breakdown_duration_min: {d} is not a whole number of steps "
                       f"of step_min={meta.step_min}")
    pf = _try(PowerFlowConfig, raw.get("power_flow", {}))
    if pf is not None and pf.vm_min_pu >= pf.vm_max_pu:
        out.append(f"power_flow.vm_min_pu: {pf.vm_min_pu} must be < vm_max_pu {pf.vm_max_pu}")
    if "study" in raw:
        out.extend(study_problems(raw["study"]))
    return out


def out_of_shape(g: GridConfig) -> bool:
    """True if a grid's profile fields are not usable yet (reported elsewhere)."""
    from grids.profiles import SHAPES

    for value in (g.load_shape, g.pv_shape):
        if isinstance(value, dict):
            return True
        if isinstance(value, str) and value not in SHAPES:
            return True
        if not isinstance(value, str) and _number_list_problems(value, ""):
            return True
    return False


def validate(raw: dict, source: str | None = None, base: str | Path | None = None) -> Config:
    """Parse and check a scenario; raise :class:`ScenarioError` listing every problem.

    ``base`` is the folder CSV profiles are read relative to (default: the folder of
    ``source``, else the working directory).
    """
    if not isinstance(raw, dict):
        raise ScenarioError(["<root>: expected a table"], source)
    if base is None:
        base = Path(source).parent if source else Path.cwd()
    raw, problems = resolve_profiles(raw, Path(base))
    raw = resolve_feeders(raw, Path(base))
    cfg, shape = shape_problems(raw)
    problems += shape
    problems += meaning_problems(raw)
    named = {p.split(": ", 1)[0] for p in problems}
    problems += [p for p in nonfinite_problems(raw)
                 if _policy_path(raw, p.split(": ", 1)[0]) not in named]
    if problems:
        raise ScenarioError(list(dict.fromkeys(problems)), source)
    assert cfg is not None
    return cfg


_KEY_PART = re.compile(r"([^.\[\]]+)((?:\[-?\d+\])*)\Z")


def parse_key(key: str) -> list[str | int] | None:
    """``fleet[0].p_max_mw`` as ``["fleet", 0, "p_max_mw"]``; None if it is not such a key."""
    out: list[str | int] = []
    for part in key.strip().split("."):
        m = _KEY_PART.match(part.strip())
        if not m:
            return None
        out.append(m.group(1).strip())
        out.extend(int(i) for i in re.findall(r"\[(-?\d+)\]", m.group(2)))
    return out


def _label(steps: list[str | int]) -> str:
    return _path(tuple(steps)) or "<root>"


def set_value(raw: dict, key: str | list[str | int], value: Any) -> None:
    """Set ``key`` (``"grids.dn1.peak_load_mw"``, ``"fleet[0].p_max_mw"``) in a raw scenario.

    Missing tables on the way are created; list entries must exist. Raises
    :class:`ScenarioError` (without the ``--set`` prefix) when the key cannot be reached.
    """
    steps = parse_key(key) if isinstance(key, str) else list(key)
    if not steps:
        raise ScenarioError([f"{key}: expected a dotted key such as scenario.step_min or "
                             f"fleet[0].p_max_mw"])
    node: Any = raw
    for i, step in enumerate(steps):
        if isinstance(node, list) and isinstance(step, str) and step.isdigit():
            step = steps[i] = int(step)  # fleet.0.p_max_mw is fleet[0].p_max_mw
        last = i == len(steps) - 1
        here = _label(steps[:i])
        if isinstance(step, int):
            if not isinstance(node, list):
                raise ScenarioError([f"{_label(steps[:i + 1])}: {here} is not an array "
                                     f"(it is {_type_name(node)}), so it has no entry [{step}]"])
            if not 0 <= step < len(node):
                span = f"indices 0-{len(node) - 1}" if node else "no entries"
                raise ScenarioError([f"{_label(steps[:i + 1])}: index {step} is out of range "
                                     f"({here} has {len(node)} entr"
                                     f"{'y' if len(node) == 1 else 'ies'}, {span})"])
            if last:
                node[step] = value
            else:
                node = node[step]
            continue
        if not isinstance(node, dict):
            raise ScenarioError([f"{_label(steps[:i + 1])}: {here} is not a table (it is "
                                 f"{_type_name(node)})"])
        if last:
            node[step] = value
            break
        child = node.get(step)
        nxt = steps[i + 1]
        if isinstance(child, list) and not (isinstance(nxt, int) or nxt.isdigit()):
            raise ScenarioError([f"{_label(steps[:i + 2])}: {_label(steps[:i + 1])} is an array; "
                                 f"name an entry, e.g. {_label(steps[:i + 1])}[0].{nxt}"])
        if isinstance(child, list):
            pass
        elif isinstance(nxt, int):
            raise ScenarioError([f"{_label(steps[:i + 2])}: {_label(steps[:i + 1])} is not "
                                 f"an array (it is "
                                 f"{'missing' if child is None else _type_name(child)})"])
        elif not isinstance(child, dict):
            child = {}
            node[step] = child
        node = child


def _policy_path(raw: dict, path: str) -> str:
    """``compare.params.NAME.KEY`` as the policy checks name it
    (``compare.policies[i].params.KEY``), other paths unchanged."""
    m = re.match(r"compare\.params\.([^.\[]+)(.*)\Z", path)
    cmp_ = raw.get("compare")
    pols = cmp_.get("policies") if isinstance(cmp_, dict) else None
    if m and isinstance(pols, list) and m.group(1) in pols:
        return f"compare.policies[{pols.index(m.group(1))}].params{m.group(2)}"
    return path


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``KEY=VALUE`` overrides to a raw scenario dict: dotted keys with list indices
    (``grids.dn1.peak_load_mw=2``, ``fleet[0].p_max_mw=0.1``), TOML values (a bare word is a
    string). Every problem is reported at once, as a :class:`ScenarioError`."""
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        steps = parse_key(key) if sep and key.strip() else None
        if not steps:
            problems.append(f"--set {item}: expected KEY=VALUE, for example scenario.step_min=15 "
                            f"or fleet[0].p_max_mw=0.1")
            continue
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()  # a bare word is a string
        try:
            set_value(raw, steps, parsed)
        except ScenarioError as exc:
            problems += [f"--set {item}: {p}" for p in exc.problems]
    if problems:
        raise ScenarioError(problems)
    return raw


def with_override_origin(exc: ScenarioError, overrides: list[str]) -> ScenarioError:
    """``exc`` with every problem whose field a ``--set`` override wrote (or lies inside)
    followed by ``(from --set KEY=VALUE)``, so a message that names a key the file does not
    have says where that key came from. Problems about the ``--set`` items themselves are left
    as they are."""
    sets = []
    for item in overrides or []:
        key, sep, _ = item.partition("=")
        steps = parse_key(key) if sep and key.strip() else None
        if steps:
            sets.append((_label(steps), item))
    if not sets:
        return exc

    def origin(problem: str) -> str:
        if problem.startswith("--set "):
            return problem
        path = problem.split(": ", 1)[0]
        hits = [item for key, item in sets
                if key == path or key.startswith((path + ".", path + "["))
                or path.startswith((key + ".", key + "["))]
        return f"{problem} (from --set {', --set '.join(hits)})" if hits else problem

    return ScenarioError([origin(p) for p in exc.problems], exc.source)


def resolve_feeders(raw: dict, base: Path) -> dict:
    """A grid's ``feeder`` that names a relative ``.json`` path becomes a path from ``base``
    (the scenario's folder, as CSV profiles are read), or from the working directory when the
    file is not in ``base`` but is there (a ``--set`` on a built-in scenario)."""
    grids = raw.get("grids")
    if not isinstance(grids, dict):
        return raw
    new = {}
    for gname, graw in grids.items():
        feeder = graw.get("feeder") if isinstance(graw, dict) else None
        if isinstance(feeder, str) and feeder.lower().endswith(".json"):
            path = Path(feeder)
            if not path.is_absolute():
                here = Path(base) / path
                if not here.is_file() and path.is_file():
                    here = Path.cwd() / path
                graw = {**graw, "feeder": str(here)}
        new[gname] = graw
    return {**raw, "grids": new}


SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
DEFAULT_EXPERIMENT = "sfi-quick"


def builtin() -> dict[str, Path]:
    """The built-in scenarios by name (``experiments/scenarios/*.toml``)."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.toml"))}


def resolve(target: str | None) -> Path:
    """A built-in experiment name or a path to a TOML file."""
    target = target or DEFAULT_EXPERIMENT
    names = builtin()
    if target in names:
        return names[target]
    path = Path(target)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError([f"{target}: no such scenario file"])
        return path
    raise ScenarioError([f"{target}: not a built-in experiment ({', '.join(names)}) "
                         "and not a .toml file"])


def read_raw(path: str | Path) -> dict:
    """Read a TOML scenario file as plain data (never executed). A file that cannot be read,
    is not UTF-8 text (or starts with a byte-order mark), is nested too deeply or is not valid
    TOML is a :class:`ScenarioError` naming the file; its contents are never echoed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read file ({exc.strerror})"]) from None
    if data.startswith(b"\xef\xbb\xbf"):
        raise ScenarioError([f"{path}: starts with a UTF-8 byte-order mark (BOM); save it as "
                             f"UTF-8 without a BOM"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ScenarioError([f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
                             f"{line}); scenario files must be saved as UTF-8"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"{path}: not valid TOML ({exc})"]) from None
    except RecursionError:
        raise ScenarioError([f"{path}: arrays or tables nested too deeply to be a "
                             f"scenario"]) from None


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read and validate a scenario, after optional ``KEY=VALUE`` overrides. ``path`` is a TOML
    file or the name of a built-in scenario (``load("three-dn")``)."""
    path = resolve(str(path))
    raw = apply_overrides(read_raw(path), overrides or [])
    return validate(raw, source=str(path))
