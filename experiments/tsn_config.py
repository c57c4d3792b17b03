"""Schema of a seed-001 study file (``[scenario] kind = "tsn-study"``), strict.

A study file names the case (``ieee30`` or ``ieee118`` with ``grids.transmission.build_case``
overrides), the solver settings of the centralised MILP, the OCD runs to compare and the sweeps
(line rating, transport cost). Unknown keys and wrong types are errors that name their path.

``[trains] degradation = { model = "lfp", temp_c = 30.0 }`` gives every train's battery an
ageing model of :mod:`agents.degradation` (default ``none``: SOH stays 1.0); the co-simulation
records its SOH every hour (``soh_frac`` of the ``trains`` table, see :mod:`agents.train`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from experiments.config import (
    SAFE_NAME,
    DegradationConfig,
    apply_overrides,
    degradation_field_problems,
    nonfinite_problems,
    read_raw,
)
from sim.errors import ScenarioError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TsnScenario(_Strict):
    kind: Literal["tsn-study"]
    name: str
    description: str = ""
    seed: int = 0


class TsnCaseSection(_Strict):
    name: Literal["ieee30", "ieee118"]
    overrides: dict[str, Any] = Field(default_factory=dict)


class TsnSolver(_Strict):
    solver: Literal["highs", "cbc"] = "highs"
    mip_gap: float = Field(1e-4, gt=0, lt=1)
    time_limit_s: float = Field(600.0, gt=0)
    pwl_segments: int = Field(8, ge=1, le=100)
    mode_binaries: bool = True


class OcdRun(_Strict):
    label: str
    variant: Literal["literal", "enhanced"] = "enhanced"
    mobility: Literal["pairwise", "exact"] = "pairwise"
    request_candidates: bool = False
    polish: bool = False
    rho0: float = Field(1.0, gt=0)
    max_iter: int = Field(50, ge=1, le=500)
    eps: float = Field(1e-3, gt=0)
    stall_iters: int = Field(2, ge=1)


class TsnOcd(_Strict):
    power_gap: float = Field(1e-4, gt=0, lt=1)
    power_time_limit_s: float = Field(120.0, gt=0)
    runs: list[OcdRun] = Field(default_factory=list)


class TsnSweeps(_Strict):
    line: str | None = None
    line_ratings_mw: list[float] = Field(default_factory=list)
    transport_costs_per_h: list[float] = Field(default_factory=list)

    @field_validator("line_ratings_mw")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not x > 0]
        if bad:
            raise ValueError(f"line ratings must be > 0 MW, got {bad}")
        return v

    @field_validator("transport_costs_per_h")
    @classmethod
    def _nonneg(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not x >= 0]
        if bad:
            raise ValueError(f"values must be >= 0, got {bad}")
        return v


class TsnCheck(_Strict):
    vm_min_pu: float = Field(0.94, gt=0)
    vm_max_pu: float = Field(1.06, gt=0)


class TsnTrains(_Strict):
    """The trains' battery: ``degradation`` is the ageing model of every train (model name and
    its parameters, as a DN vehicle's ``degradation``); the pack size ``e_nom_kwh`` defaults to
    each train's ``e_max_mwh`` and the exchange C-rate to ``1/gamma_h``
    (:func:`agents.train.train_degradation`)."""

    degradation: DegradationConfig = DegradationConfig()


class TsnStudyConfig(_Strict):
    scenario: TsnScenario
    case: TsnCaseSection
    solver: TsnSolver = TsnSolver()
    ocd: TsnOcd = TsnOcd()
    sweeps: TsnSweeps = TsnSweeps()
    check: TsnCheck = TsnCheck()
    trains: TsnTrains = TsnTrains()


def is_tsn_study(raw: dict) -> bool:
    return isinstance(raw.get("scenario"), dict) and raw["scenario"].get("kind") == "tsn-study"


def _problems(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        path = ""
        for part in e["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "finite_number":
            msg = f"must be finite, got {e['input']!r}"
        out.append(f"{path}: {msg}")
    return out


def load_tsn(path: str | Path, overrides: list[str] | None = None) -> TsnStudyConfig:
    """Read and check a study file; every problem is reported at once as a ScenarioError."""
    path = Path(path)
    raw = read_raw(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    problems: list[str] = []
    cfg = None
    try:
        cfg = TsnStudyConfig.model_validate(raw)
    except ValidationError as exc:
        problems += _problems(exc)
    if cfg is not None:
        if not SAFE_NAME.match(cfg.scenario.name):
            problems.append(f"scenario.name: {cfg.scenario.name!r} is used in file names; use "
                            f"letters, digits, '.', '_' and '-' only, starting with a letter "
                            f"or digit")
        ratings = cfg.case.overrides.get("line_rating_overrides_mw")
        if isinstance(ratings, dict):
            problems += [f"case.overrides.line_rating_overrides_mw.{line}: a line rating must be "
                         f"> 0 MW, got {mw!r}" for line, mw in ratings.items()
                         if isinstance(mw, (int, float)) and not mw > 0]
        if cfg.sweeps.line_ratings_mw and not cfg.sweeps.line:
            problems.append("sweeps.line: needed when sweeps.line_ratings_mw is given")
        labels = [r.label for r in cfg.ocd.runs]
        if len(set(labels)) != len(labels):
            problems.append("ocd.runs: labels must be unique")
        if cfg.check.vm_min_pu >= cfg.check.vm_max_pu:
            problems.append("check: vm_min_pu must be below vm_max_pu")
    problems += _case_problems(raw)
    named = {p.split(": ", 1)[0] for p in problems}
    problems += [p for p in nonfinite_problems(raw) if p.split(": ", 1)[0] not in named]
    trains = raw.get("trains")
    if isinstance(trains, dict) and "degradation" in trains:
        problems += degradation_field_problems(trains["degradation"], "trains.degradation")
    if problems:
        raise ScenarioError(problems, source=str(path))
    return cfg


def _case_problems(raw: dict) -> list[str]:
    """The case overrides, checked by the builder itself (it names every bad key), even when
    other sections have problems, so that one pass lists everything."""
    try:
        case = TsnCaseSection.model_validate(raw.get("case", {}))
        sweeps = TsnSweeps.model_validate(raw.get("sweeps", {}))
    except ValidationError:
        return []  # already reported by the full validation
    from grids.transmission import build_case

    kw = dict(case.overrides)
    if sweeps.line:
        kw["line_rating_overrides_mw"] = {**kw.get("line_rating_overrides_mw", {}),
                                          sweeps.line: 1.0}
    try:
        build_case(case.name, "mes", **kw)
    except ScenarioError as exc:
        return [f"case.{p}" if p.startswith("overrides.") else f"case.overrides: {p}"
                for p in exc.problems]
    return []
