"""The README and the documentation site: the site builds with warnings as errors, the generated
parts (policy table, scenario and policy references) equal what the code gives now, the README
stays short and its policy example runs, and no page names a machine path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import docgen
from policies import registry

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _pages() -> list[Path]:
    return [README, ROOT / "mkdocs.yml", *sorted((ROOT / "docs").rglob("*.md"))]


def test_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(ROOT / "mkdocs.yml"), "-d", str(site)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ("index.html", "reference/scenarios/index.html",
                 "reference/policies/index.html", "studies/battery-trains/index.html",
                 "model/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    # the changelog page includes CHANGELOG.md itself
    first = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
    assert first in (site / "changelog" / "index.html").read_text(encoding="utf-8")


def test_generated_files_equal_what_the_code_gives_now():
    assert docgen.stale(ROOT) == [], "run: python -m experiments.docgen"
    assert docgen.main(["--check", "--root", str(ROOT)]) == 0


def _readme_table(text: str) -> str:
    start = text.index(docgen.TABLE_START) + len(docgen.TABLE_START)
    return text[start:text.index(docgen.TABLE_END)].strip("\n") + "\n"


def test_readme_policy_table_is_the_registry_at_test_time():
    table = _readme_table(README.read_text(encoding="utf-8"))
    assert table == docgen.policy_table()
    # read back independently: one row per built-in name, a class in exactly its systems' cells
    lines = table.splitlines()
    systems = [c.strip().strip("`") for c in lines[0].strip("|").split("|")][1:]
    seen = {}
    for row in lines[2:]:
        cells = [c.strip().strip("`") for c in row.strip("|").split("|")]
        seen[cells[0]] = {s: c for s, c in zip(systems, cells[1:]) if c}
    expected = {name: {s: cls.__name__ for s, cls in impl.items()
                       if cls.__module__.startswith("policies.")}
                for name, impl in registry.POLICIES.items()}
    assert seen == {k: v for k, v in expected.items() if v}


def test_a_policy_registered_elsewhere_stays_out_of_the_generated_table(monkeypatch):
    class Outside:
        name = "outside"

    monkeypatch.setitem(registry.POLICIES, "outside", {"dn-sites": Outside})
    monkeypatch.setitem(registry.POLICIES, "greedy",
                        {**registry.POLICIES["greedy"], "transmission": Outside})
    table = docgen.policy_table()
    assert "outside" not in table and "Outside" not in table
    assert "`GreedyPolicy`" in table


def test_a_stale_readme_table_is_detected(tmp_path):
    text = README.read_text(encoding="utf-8")
    stale = text.replace(docgen.TABLE_END, "| `made-up` |  |  |  |\n" + docgen.TABLE_END)
    (tmp_path / "README.md").write_text(stale, encoding="utf-8")
    (tmp_path / "docs" / "reference").mkdir(parents=True)
    for name, text_ in (("scenarios.md", docgen.scenario_reference()),
                        ("policies.md", docgen.policy_reference())):
        (tmp_path / "docs" / "reference" / name).write_text(text_, encoding="utf-8")
    assert docgen.stale(tmp_path) == [tmp_path / "README.md"]
    assert docgen.readme_with_table(stale) == text
    (tmp_path / "README.md").write_text("no table here\n", encoding="utf-8")
    assert docgen.stale(tmp_path) == [tmp_path / "README.md"]


def test_scenario_reference_covers_every_schema_key():
    from experiments.config import Config
    from experiments.tsn_config import TsnStudyConfig

    page = docgen.scenario_reference()
    for root in (Config, TsnStudyConfig):
        for _path, model in docgen._walk(root, ""):
            for name, field in model.model_fields.items():
                key = field.alias or name
                assert any(f"`{k}" in page for k in (f"{key}`", f"[{key}", f"[[{key}")), (
                    model.__name__, name)
    for name, fields in docgen.NOTES.items():  # every hand-written note names a real field
        model = next(m for _p, m in docgen._walk(Config, "") if m.__name__ == name)
        assert set(fields) <= set(model.model_fields), name


def test_policy_reference_lists_every_parameter_with_its_default():
    import inspect

    page = docgen.policy_reference()
    for name, impl in docgen.builtin_policies().items():
        for system, cls in impl.items():
            assert f"### `{name}` on `{system}`" in page
            for key, p in inspect.signature(cls.__init__).parameters.items():
                if key == "self":
                    continue
                default = ("required" if p.default is inspect.Parameter.empty
                           else f"`{docgen._value(p.default)}`")
                assert f"| `{key}` | {default} |" in page, (name, key)


def test_readme_is_short_and_keeps_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ci = next(ln for ln in ci_lines if ln.startswith("python3 -m venv .venv && "))
    test_cmd = ci.removeprefix("python3 -m venv .venv && ")
    assert test_cmd.endswith("&& .venv/bin/pytest")
    assert f"python3 -m venv .venv && {test_cmd}\n" in text
    assert ("python3 -m venv .venv && .venv/bin/pip install -c requirements.lock -e . && "
            ".venv/bin/mescosim run\n") in text
    head = text[:text.index("## A five-minute tour")]
    assert head.count("```bash") == 2  # the two commands come first


def test_ci_runs_the_studies_plain_pytest_leaves_out():
    import tomllib

    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["pytest"]["ini_options"]
    assert "-m 'not study'" in pytest_ini["addopts"]
    assert any(m.startswith("study:") for m in pytest_ini["markers"])
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    # after the plain run (the README's command), the left-out studies run
    plain = next(i for i, ln in enumerate(ci) if ln.endswith("&& .venv/bin/pytest"))
    assert ".venv/bin/pytest -m study" in ci[plain + 1:]


def test_readme_links_point_at_files_that_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing


#: an absolute path (not part of a URL, a relative path or a home-relative one)
ABS_PATH = re.compile(r"(?<![\w:/.~-])/(?!/)[A-Za-z_][\w.-]*/[\w.-]+")
SYSTEM_DIRS = ("/etc/", "/usr/", "/dev/", "/proc/")


def test_no_machine_paths_or_study_numbers_in_readme_or_docs():
    bad = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        # an absolute path names somebody's machine, unless it is a system place every
        # machine has (a config example under /etc, a tool under /usr)
        for path in ABS_PATH.findall(text):
            if not path.startswith(SYSTEM_DIRS):
                bad.append(f"{page.relative_to(ROOT)}: {path}")
        if re.search(r"\bseed[- ]?00[0-9]\b", text, re.IGNORECASE):
            bad.append(f"{page.relative_to(ROOT)}: studies are named by domain, not 'seed N'")
        if re.search(r"\bissue \d+\b", text, re.IGNORECASE):
            bad.append(f"{page.relative_to(ROOT)}: issue number")
    assert not bad


@pytest.mark.slow
def test_the_readme_policy_example_runs():
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    code = next(b for b in blocks if "class NightCharger" in b)
    # the same example on a 6 h horizon, to keep the test short
    short = code.replace('load("three-dn", [', 'load("three-dn", ["scenario.horizon_min=360", ')
    assert short != code
    scope: dict = {}
    try:
        exec(compile(short, "README.md", "exec"), scope)
    finally:
        registry.unregister_policy("night-charger")
    m = scope["result"].metrics
    sfi = m[(m.metric == "sfi_total") & (m.entity == "system")].set_index("policy")["value"]
    assert set(sfi.index) == {"night-charger", "idle"}
    v = scope["result"].tables["vehicles"]
    night = v[v.policy == "night-charger"]
    assert (night.p_mw.abs() > 0).any()  # it charged or discharged
