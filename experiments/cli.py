"""The ``mescosim`` command line.

    mescosim list                      built-in scenarios, policies and grids
    mescosim run [NAME|PATH.toml]      run one (the default experiment without an argument)
    mescosim check [NAME|PATH.toml]    validate a scenario without running it
    mescosim tsn-sim [NAME] --policy uc-milp|ocd   seed 001 plan in the train co-simulation
    mescosim sweep [NAME|PATH.toml] --scenarios N --out DIR   Monte Carlo realisations (resumable)
    mescosim bench [NAME|PATH.toml] --policies a,b,c --scenarios N --out DIR   policy benchmark
    mescosim plot SWEEP_DIR            figures of a sweep or benchmark directory

Exit codes: 0 done; 1 an unexpected error (one line, the traceback with --debug); 2 a wrong
scenario (every problem listed, no traceback unless --debug); 3 a run that
``power_flow.on_failure = "stop"`` ended early (its directory says ``stopped``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tomllib
from pathlib import Path

from experiments.config import DEFAULT_EXPERIMENT, builtin, resolve
from sim.errors import ScenarioError

EXIT_SCENARIO = 2
EXIT_STOPPED = 3


def describe(path: Path) -> str:
    try:
        meta = tomllib.loads(path.read_text(encoding="utf-8")).get("scenario", {})
    except (OSError, tomllib.TOMLDecodeError):
        return "(unreadable)"
    return str(meta.get("description", "")).strip().splitlines()[0] if meta.get(
        "description") else ""


def cmd_replay(args) -> int:
    from experiments.replay import replay

    run_dir = Path(args.run_dir)
    r = replay(run_dir, args.out, args.seed, args.policy, args.model, args.delay_prob,
               args.delay_max_min)
    print(f"replay of the {r.family} plan recorded in {run_dir}, seed {r.seed}: wrote {r.out}/")
    print(f"  planned_vs_simulated.parquet ({len(r.planned_vs_simulated)} rows), "
          f"violations.parquet ({len(r.violations)} rows), meta.json")
    for line in r.notes:
        print(f"  {line}")
    for line in r.lines():
        print(line)
    return 0


def cmd_policies(args) -> int:
    """The registry as a table: which policy runs on which system, and its parameters."""
    from policies.registry import POLICIES, SYSTEMS, policy_class

    width = max(len(n) for n in POLICIES)
    for system, text in SYSTEMS.items():
        print(f"{system}: {text}")
    print()
    for name in sorted(POLICIES):
        for system in sorted(POLICIES[name]):
            cls = policy_class(name, system)
            para = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
            first = para.split(". ")[0].rstrip(".").replace("``", "")
            print(f"{name:<{width}}  {system:<12}  {first}")
    return 0


def cmd_list(args) -> int:
    """The built-in scenarios, the registered policies (with the systems they run on) and the
    registered grids."""
    from grids.feeders import feeder_names
    from policies.registry import POLICIES, names_for

    names = builtin()
    width = max(len(n) for n in names)
    print("scenarios (mescosim run NAME):")
    for name, path in names.items():
        mark = " (default)" if name == DEFAULT_EXPERIMENT else ""
        print(f"  {name:<{width}}  {describe(path)}{mark}")
    names_for("dn-sites")  # loads installed plugins
    print("\npolicies (policy.name; `mescosim policies` describes them):")
    pwidth = max(len(n) for n in POLICIES)
    for name in sorted(POLICIES):
        print(f"  {name:<{pwidth}}  {', '.join(sorted(POLICIES[name]))}")
    print("  or 'module:Class' naming a class of your own")
    print("\ngrids (grids.NAME.feeder):")
    print(f"  {', '.join(feeder_names())}")
    print("  or any pandapower.networks factory without arguments "
          "(e.g. kerber_landnetz_freileitung_1), or a pandapower .json file")
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("mescosim")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _kind(path: Path) -> str:
    """``[scenario] kind`` of a file: "tsn-study" or "coopt-study" for the seed-001/002
    studies, else ``"run"``."""
    from experiments.config import read_raw

    try:
        raw = read_raw(path)
    except ScenarioError:
        return "run"  # the full loader reports the problem
    scen = raw.get("scenario")
    return str(scen.get("kind", "run")) if isinstance(scen, dict) else "run"


def _warn_long(cfg) -> None:
    """A warning with the estimated wall time of a long plain run (before it starts)."""
    from experiments.run import WARN_RUN_S, estimate_run_s

    est = estimate_run_s(cfg)
    if est > WARN_RUN_S:
        steps = cfg.scenario.horizon_min // cfg.scenario.step_min
        print(f"warning: {steps:,} steps x {len(cfg.grids)} grids x {len(cfg.policy_runs())} "
              f"policies: this run will take about {est / 3600:.1f} h (rough estimate); "
              f"shorten scenario.horizon_min or use fewer policies for a quick look",
              file=sys.stderr)


def cmd_check(args) -> int:
    from experiments.config import load

    path = resolve(args.target)
    if _kind(path) == "coopt-study":
        from experiments import coopt_study

        st, _, _ = coopt_study.settings_for(path, args.set)
        print(f"{path}: ok (Co-OPT study on the {st.network} network, "
              f"{len(st.models)} degradation models)")
        return 0
    if _kind(path) == "tsn-study":
        from experiments.tsn_config import load_tsn

        tcfg = load_tsn(path, args.set)
        print(f"{path}: ok (tsn study on {tcfg.case.name}, {len(tcfg.ocd.runs)} OCD runs)")
        return 0
    cfg = load(path, args.set)
    if cfg.study is not None:
        from experiments import sfi_study

        sfi_study.settings_from_config(cfg.study)  # what `run` would refuse
    else:
        _warn_long(cfg)
    print(f"{path}: ok ({len(cfg.grids)} grids, {len(cfg.fleet)} vehicles, "
          f"policies {', '.join(n for n, _ in cfg.policy_runs())})")
    return 0


# Column headers of the one-screen summary (the metrics table keeps the full names).
SHORT_NAMES = {"energy_delivered_mwh": "delivered_mwh",
               "voltage_violation_bus_steps": "v_viol", "loading_violation_line_steps": "overloads",
               "nonconverged_steps": "nonconv"}


def print_summary(result, out: Path) -> None:
    import pandas as pd

    from experiments.metrics import summary_table

    cfg = result.config
    steps = cfg.scenario.horizon_min // cfg.scenario.step_min
    print(f"mescosim run: {cfg.scenario.name} (seed {result.seed}), "
          f"{steps} steps of {cfg.scenario.step_min} min, {len(cfg.fleet)} vehicles, "
          f"{len(cfg.grids)} grids, {result.meta['wall_s']:.1f} s")
    print(f"wrote {out}/ ({len(result.tables) + 1} tables, {len(result.figures)} figures)")
    summary = summary_table(result.metrics).rename(columns=SHORT_NAMES)
    with pd.option_context("display.width", 120, "display.max_columns", 20,
                           "display.float_format", "{:.3f}".format):
        print()
        print(summary.to_string())
    lim = result.info["limits"]
    print(f"(v_viol: bus-steps outside [{lim['vm_min_pu']}, {lim['vm_max_pu']}] p.u.; "
          f"overloads: line-steps above {lim['loading_max_pct']:g} %; "
          f"nonconv: power flows that did not converge)")
    m = result.metrics
    per_site = m[(m.metric == "sfi_accumulated") & (m.entity != "system")]
    if len(per_site):
        wide = per_site.pivot_table(index="policy", columns="entity", values="value")
        with pd.option_context("display.float_format", "{:.2f}".format):
            print("\naccumulated SFI per site (equal weights):")
            print(wide.to_string())
    failures = result.tables.get("failures")
    if failures is not None and len(failures):
        counts = failures.groupby(["policy", "kind", "status"]).size()
        print("\nrecorded failures:")
        print(counts.to_string())
    print(f"\nfigures: {out / 'figures'}")
    if (out / "report.html").is_file():
        print(f"report: {out / 'report.html'}")


def _clear(args) -> None:
    """Empty ``--out`` (an earlier run directory) once ``--overwrite`` and every check allow."""
    if args.out and args.overwrite:
        from experiments.run import clear_out

        clear_out(args.out)


def cmd_run(args) -> int:
    from experiments.config import load
    from experiments.run import (
        default_run_dir,
        mark_interrupted,
        out_problems,
        run_one,
        start_run_dir,
        write_run,
    )

    path = resolve(args.target)
    problems = out_problems(args.out, path, args.overwrite, can_overwrite=True)
    if args.seed is not None and args.seed < 0:
        problems.append(f"--seed: must be >= 0 (a numpy SeedSequence entropy), got {args.seed}")
    if problems:
        raise ScenarioError(problems)
    if _kind(path) == "coopt-study":  # seed 002: DP router study, its own settings
        from experiments import coopt_study

        sets = list(args.set) + (["study.figures=false"] if args.no_figures else [])
        coopt_study.settings_for(path, sets)  # refused before the output is cleared
        seed = args.seed if args.seed is not None else coopt_study.scenario_seed(path, sets)
        _clear(args)
        return coopt_study.cli_run(path, args.out, seed, sets)
    if _kind(path) == "tsn-study":  # seed 001: UC with battery trains, its own schema
        from experiments import tsn_study
        from experiments.tsn_config import load_tsn

        tcfg = load_tsn(path, args.set)
        _clear(args)
        return tsn_study.cli_run(tcfg, args.out, not args.no_figures)
    cfg = load(path, args.set)
    seed = cfg.scenario.seed if args.seed is None else args.seed
    if cfg.study is not None:  # the seed 000 study runs instead of a plain run
        from experiments import sfi_study

        settings = sfi_study.settings_from_config(cfg.study)
        _clear(args)
        return sfi_study.cli_run(cfg, seed, settings, args.out, not args.no_figures)
    _warn_long(cfg)
    _clear(args)
    out = Path(args.out) if args.out else default_run_dir(cfg, seed)
    start_run_dir(out, cfg, seed)
    stage = "simulation"
    bar = _run_bar(cfg)
    try:
        result = run_one(cfg, seed, progress=bar.update_to)
        bar.close()
        stage = "writing"
        write_run(result, out, figures=not args.no_figures)
    except KeyboardInterrupt:
        mark_interrupted(out, stage)
        print(f"{out}/meta.json says status \"interrupted\" (during the {stage})",
              file=sys.stderr)
        raise
    print_summary(result, out)
    for note in result.meta.get("marked", []):
        print(f"marked: {note} (power_flow.on_failure = \"mark\")", file=sys.stderr)
    stop = result.meta.get("stopped")
    if stop:
        print(f"run stopped: power flow of {stop['site']} at minute {stop['time_min']} under "
              f"policy {stop['policy']}: {stop['status']} (power_flow.on_failure = \"stop\"); "
              f"{out}/meta.json says status \"stopped\"", file=sys.stderr)
        return EXIT_STOPPED
    return 0


class _RunBar:
    """A progress bar on stderr over every policy's engine steps; it appears only on a
    terminal and only after two seconds, so short runs and logs stay clean."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="step", delay=2.0, disable=None, leave=False,
                        file=sys.stderr, dynamic_ncols=True)
        self.done: dict[str, int] = {}

    def update_to(self, policy: str, step: int, n_steps: int) -> None:
        before = sum(self.done.values())
        self.done[policy] = step
        self.bar.set_description(policy, refresh=False)
        self.bar.update(sum(self.done.values()) - before)

    def close(self) -> None:
        self.bar.close()


def _run_bar(cfg) -> _RunBar:
    n_steps = cfg.scenario.horizon_min // cfg.scenario.step_min
    return _RunBar(n_steps * len(cfg.policy_runs()))


SWEEP_DEFAULT = "three-dn"
SWEEP_HELP = (f"experiment name or .toml (default {SWEEP_DEFAULT}: the three-DN simulation; "
              f"`mescosim run`'s default {DEFAULT_EXPERIMENT} is a study, not a "
              "per-realisation simulation, and cannot be swept)")


#: The most scenarios one sweep takes: each is a row of the manifest and a file on disk.
MAX_SCENARIOS = 1_000_000


def flag_problems(args, policies: list[str] | None = None) -> list[str]:
    """Every problem with a sweep's or benchmark's flags, named by flag, before anything runs."""
    out = []
    if not 1 <= args.scenarios <= MAX_SCENARIOS:
        out.append(f"--scenarios: must be between 1 and {MAX_SCENARIOS:,}, got {args.scenarios}")
    if args.seed is not None and args.seed < 0:
        out.append(f"--seed: must be >= 0 (a numpy SeedSequence entropy), got {args.seed}")
    if args.workers is not None and args.workers < 0:
        out.append(f"--workers: must be >= 0 (0 runs in this process), got {args.workers}")
    if args.scheduler is not None:
        scheme, sep, rest = args.scheduler.partition("://")
        host, colon, port = rest.rpartition(":")
        if not (sep and scheme in ("tcp", "tls", "inproc", "ucx", "ws", "wss") and colon
                and host and port.isdigit()):
            out.append(f"--scheduler: expected a Dask scheduler address SCHEME://HOST:PORT "
                       f"(e.g. tcp://10.0.0.5:8786), got {args.scheduler!r}")
    if policies is not None:
        dup = sorted({p for p in policies if p and policies.count(p) > 1})
        if dup:
            out.append(f"--policies: each policy once; repeated: {', '.join(dup)}")
    return out


def _sweep_config(args, policies: list[str] | None = None):
    """The validated scenario of a sweep or benchmark: a DN config, or for the truck and train
    studies (``kind`` coopt-study / tsn-study) a target of :mod:`experiments.families`."""
    from experiments.config import apply_overrides, read_raw, validate

    problems = flag_problems(args, policies)
    if problems:
        raise ScenarioError(problems)

    path = resolve(args.target or SWEEP_DEFAULT)
    if policies is not None:
        bad = [p for p in policies if not p]
        if not policies or bad:
            raise ScenarioError(["--policies: expected a comma-separated list of policy names, "
                                 "e.g. idle,stationary,greedy"])
    kind = _kind(path)
    oracle = bool(getattr(args, "oracle", False))
    if oracle and kind in ("tsn-study", "coopt-study"):
        args.set = [*args.set, "sweep.oracle=true"]
    if kind in ("tsn-study", "coopt-study"):
        from experiments.families import FAMILY_OF_KIND, load_target, policy_problems

        if policies is not None:
            problems = policy_problems(FAMILY_OF_KIND[kind], policies)
            if problems:
                raise ScenarioError(problems)
        return load_target(path, args.set, policies)
    raw = apply_overrides(read_raw(path), args.set)
    if policies is not None:
        from experiments.families import policy_problems

        problems = policy_problems("dn-sites", policies)
        if problems:
            raise ScenarioError(problems)
        pol = raw.get("policy") if isinstance(raw.get("policy"), dict) else {}
        cmp_ = raw.get("compare") if isinstance(raw.get("compare"), dict) else {}
        known = {pol.get("name"): pol.get("params", {}), **cmp_.get("params", {})}
        raw["policy"] = {"name": policies[0], "params": known.get(policies[0], {}) or {}}
        raw["compare"] = {"policies": policies[1:],
                          "params": {p: known[p] for p in policies[1:] if known.get(p)}}
    cfg = validate(raw, source=str(path))
    if cfg.study is not None:
        raise ScenarioError([f"{path}: has a [study] section (a seed 000 study run by "
                             f"`mescosim run`), not a per-realisation simulation; sweeps run "
                             f"plain scenarios such as {SWEEP_DEFAULT}"])
    if oracle:
        from experiments.sweep import DnOracleTarget

        return DnOracleTarget(cfg)
    return cfg


def _run_sweep_cli(args, cfg) -> tuple:
    from experiments.sweep import run_sweep, target_name, target_policies

    name = target_name(cfg)
    base = cfg.scenario.seed if hasattr(cfg, "scenario") else cfg.seed
    seed = base if args.seed is None else args.seed
    default = Path("runs") / f"{args.command}-{name}-s{seed}"
    out = Path(args.out) if args.out else default
    print(f"{args.command} {name}: {args.scenarios} scenarios from seed {seed}, "
          f"policies {', '.join(target_policies(cfg))} -> {out}/", file=sys.stderr)
    summary = run_sweep(cfg, out, args.scenarios, seed, workers=args.workers,
                        scheduler=args.scheduler, retry_failed=args.retry_failed,
                        progress=not args.no_progress)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.status_counts.items())) or "none"
    print(f"{summary.ran} scenarios run ({counts}), {summary.skipped} already done; "
          f"{summary.wall_s:.1f} s on {summary.backend} ({summary.workers} workers)")
    return out, summary


def _sweep_figures(out: Path) -> None:
    from experiments.sweep_figures import write_all

    paths = write_all(out)
    print(f"figures: {', '.join(str(p) for p in paths)}")


def _sweep_report(out: Path) -> None:
    from experiments.sweep_report import write_sweep_report

    print(f"report: {write_sweep_report(out)}")


def cmd_sweep(args) -> int:
    from experiments.sweep import read_manifest

    cfg = _sweep_config(args)
    out, summary = _run_sweep_cli(args, cfg)
    man = read_manifest(out)
    failed = man[man.status != "ok"]
    print(f"results: {out}/scenarios/*.parquet ({int((man.status == 'ok').sum())} ok, "
          f"{len(failed)} failed), manifest {out}/manifest.jsonl")
    for row in failed.head(5).itertuples():
        print(f"  scenario {row.scenario} ({row.status}): {str(row.error).splitlines()[0]}")
    if not args.no_figures and (man.status == "ok").any():
        _sweep_figures(out)
    _sweep_report(out)
    return 0 if summary.failed == 0 else 1


def cmd_bench(args) -> int:
    from experiments.bench import bench_tables, format_bench, write_bench

    policies = [p.strip() for p in args.policies.split(",")]
    cfg = _sweep_config(args, policies)
    out, summary = _run_sweep_cli(args, cfg)
    tables = bench_tables(out, policies)
    write_bench(out, tables)
    print()
    print(format_bench(tables))
    if not args.no_figures and len(tables["stats"]):
        _sweep_figures(out)
    _sweep_report(out)
    if not len(tables["stats"]):
        print(f"no scenario finished ok: nothing to compare (see {out}/manifest.jsonl)",
              file=sys.stderr)
        return 1
    return 0 if summary.failed == 0 else 1


def cmd_plot(args) -> int:
    out = Path(args.sweep_dir)
    if not (out / "sweep.json").is_file():
        raise ScenarioError([f"{out}: not a sweep directory (no sweep.json); "
                             "give the --out of `mescosim sweep` or `mescosim bench`"])
    from experiments.sweep import read_manifest

    man = read_manifest(out)
    if not len(man) or not (man.status == "ok").any():
        counts = ", ".join(f"{k} {v}" for k, v in man.status.value_counts().items()) or "empty"
        raise ScenarioError([f"{out}: no scenario of the sweep finished ok (manifest.jsonl: "
                             f"{counts}); nothing to plot"])
    _sweep_figures(out)
    return 0


def _sweep_options(p, name: str, n_default: int) -> None:
    p.add_argument("target", nargs="?", help=SWEEP_HELP)
    p.add_argument("--scenarios", type=int, default=n_default,
                   help=f"number of Monte Carlo scenarios (default {n_default})")
    p.add_argument("--seed", type=int,
                   help="base seed (default the scenario's); scenario k gets "
                        "SeedSequence(seed).spawn(n)[k]")
    p.add_argument("--out", help=f"directory (default runs/{name}-<scenario>-s<seed>); "
                                 "rerunning into it resumes")
    p.add_argument("--workers", type=int,
                   help="local worker processes (default: one per CPU; 0 runs in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://host:8786 or tls://host:8786 "
                        "(TLS through Dask's distributed.comm.tls configuration)")
    p.add_argument("--retry-failed", action="store_true", help="rerun only the failed scenarios")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario value (repeatable)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    if name == "bench":
        p.add_argument("--oracle", action="store_true",
                       help="add the hindsight benchmark (train studies: the centralised MILP "
                            "with the scenario's realised loads and wind; DN scenarios: the "
                            "weighted-SFI MILP with the realised load and PV; truck studies: "
                            "the fleet MILP with the realised traffic) and each policy's "
                            "regret against it")


def _sweep_error() -> type:
    from experiments.sweep import SweepError

    return SweepError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mescosim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"mescosim {_version()}")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("list", help="the built-in scenarios, policies and grids")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("replay", help="follow a run's recorded plan through the engine with AC "
                                      "power flow every step; planned against simulated")
    p.add_argument("run_dir", help="a run directory that recorded a plan: a DN run with a "
                                   "planning policy (e.g. milp), coopt-small/-large, "
                                   "tsn-ieee30/-118")
    p.add_argument("--seed", type=int, help="another realisation (default the run's seed)")
    p.add_argument("--out", help="replay directory (default RUN_DIR/replay-s<seed>)")
    p.add_argument("--policy", help="whose plan, when the run recorded several (default all)")
    p.add_argument("--model", help="Co-OPT runs: the degradation model's plans (default all)")
    p.add_argument("--delay-prob", type=float, default=None,
                   help="Co-OPT / train runs: chance a drive or trip is held up (default the "
                        "run's setting; trains: 0)")
    p.add_argument("--delay-max-min", type=int, default=None,
                   help="... by 1..N extra minutes, seeded by --seed")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks")
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("policies", help="the registered policies and the systems they run on")
    p.set_defaults(func=cmd_policies)
    p = sub.add_parser("run", help="run a built-in experiment or a scenario file")
    p.add_argument("target", nargs="?",
                   help=f"experiment name or .toml (default {DEFAULT_EXPERIMENT})")
    p.add_argument("--out", help="run directory (default runs/<name>-s<seed>-<time>); "
                                 "refused if it holds files, unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="clear an earlier run directory given as --out before running")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario value, e.g. --set scenario.step_min=15 (repeatable)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("tsn-sim", add_help=False,
                       help="seed 001: run the uc-milp or ocd plan in the train co-simulation "
                            "(hourly DC + AC power flow); `mescosim tsn-sim --help`")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["tsn-sim"]:  # its own options (experiments/tsn_sim.py)
        from experiments import tsn_sim

        try:
            return tsn_sim.main(argv[1:])
        except ScenarioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    p = sub.add_parser("check", help="validate a scenario without running it")
    p.add_argument("target", nargs="?")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("sweep", help="Monte Carlo realisations of a scenario, locally or on Dask",
                       description="Run many seeded realisations of a plain scenario. TARGET: "
                                   + SWEEP_HELP + ". Results: one Parquet per scenario plus "
                                   "manifest.jsonl in --out; rerunning resumes.")
    _sweep_options(p, "sweep", 100)
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("bench", help="every policy on the same scenarios (common random numbers)")
    _sweep_options(p, "bench", 200)
    p.add_argument("--policies", required=True,
                   help="comma-separated policies, e.g. idle,stationary,greedy,milp; the first "
                        "is the reference of the paired differences")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("plot", help="figures of a sweep or bench directory")
    p.add_argument("sweep_dir")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_plot)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except ScenarioError as exc:
        if args.debug:
            raise
        from experiments.config import with_override_origin

        print(f"error: {with_override_origin(exc, getattr(args, 'set', []))}", file=sys.stderr)
        return EXIT_SCENARIO
    except _sweep_error() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SCENARIO
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}\n(run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def entry() -> None:
    """The ``mescosim`` program: :func:`main`, then exit with its code. Once ``main`` has
    returned the work is done (a run's directory says ``complete``), so a late Ctrl-C during the
    interpreter's shutdown is ignored instead of killing the finished process by its signal."""
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    entry()
