"""The lock file pins every dependency at a version the ranges of ``pyproject.toml`` allow.

``requirements.lock`` is what the README's commands and CI install (as a pip constraints file);
``pyproject.toml`` keeps compatible ranges for people who install mescosim as a library. The two
must not drift apart: a lock outside a range would install a combination the project never
declared, and a dependency missing from the lock would float to whatever is newest.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def parse_lock(text: str) -> dict[str, Version]:
    pins = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"requirements.lock: option line {line!r}"
        name, sep, version = line.partition("==")
        assert sep, f"requirements.lock: {line!r} is not pinned with =="
        pins[canonicalize_name(name)] = Version(version.strip())
    return pins


def lock_problems(pins: dict[str, Version], pyproject: dict) -> list[str]:
    project = pyproject["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        reqs += [Requirement(r) for r in extra]
    problems = []
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name}: declared in pyproject.toml, missing from the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}: locked {pins[name]} is outside {req.specifier}")
    return problems


def test_lock_pins_every_declared_dependency_inside_its_range():
    pins = parse_lock((ROOT / "requirements.lock").read_text(encoding="utf-8"))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert not (problems := lock_problems(pins, pyproject)), "\n".join(problems)


def test_lock_check_names_each_pin_outside_its_range_and_each_missing_one():
    pins = parse_lock("mesa==3.4.0\n    # via mescosim\nsimpy==4.1.2\n")
    pyproject = {"project": {"dependencies": ["mesa>=3.1,<3.4", "simpy>=4.1,<5", "pulp>=3.3"],
                             "optional-dependencies": {"test": ["pytest>=8"]}}}
    assert lock_problems(pins, pyproject) == [
        "mesa: locked 3.4.0 is outside <3.4,>=3.1",
        "pulp: declared in pyproject.toml, missing from the lock",
        "pytest: declared in pyproject.toml, missing from the lock",
    ]
