"""requirements.lock and pyproject.toml never drift apart.

CI and the README install every package from the lock with `--require-hashes`, then the
project with `--no-deps`: a dependency added to pyproject.toml but not locked, or a bound
the locked pin no longer meets, would otherwise only show up as a broken install (or, worse,
as tests passing on versions pyproject.toml forbids).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
RUN_LOCK = ROOT / "requirements-run.lock"  # the README's first command: the bot without test tools
SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class LockedPin:
    requirement: Requirement
    hashes: tuple[str, ...]

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)


def locked_pins(lock: Path = LOCK) -> list[LockedPin]:
    # One entry per logical line: `name==version ; marker \` then `--hash=…` continuations.
    pins = []
    for line in lock.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement, *hashes = line.split("--hash=")
        pins.append(LockedPin(Requirement(requirement.strip()), tuple(h.strip() for h in hashes)))
    return pins


def declared_requirements() -> list[Requirement]:
    """What `pip install -e '.[test]'` asks for, and what building the project needs."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = [
        *pyproject["project"]["dependencies"],
        *pyproject["project"]["optional-dependencies"]["test"],
        *pyproject["build-system"]["requires"],
    ]
    return [Requirement(r) for r in declared]


def pinned_versions(name: str) -> list[str]:
    return [str(next(iter(p.requirement.specifier)).version) for p in locked_pins() if p.name == name]


def test_every_lock_entry_is_an_exact_pin_with_sha256_hashes() -> None:
    pins = locked_pins()
    assert len(pins) > 20
    for pin in pins:
        specifiers = list(pin.requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"not an exact pin: {pin.requirement}"
        assert pin.hashes, f"{pin.requirement} has no hash"
        assert all(SHA256.match(h) for h in pin.hashes), f"{pin.requirement}: {pin.hashes}"


@pytest.mark.parametrize("requirement", declared_requirements(), ids=str)
def test_declared_dependency_is_locked_within_its_bounds(requirement: Requirement) -> None:
    name = canonicalize_name(requirement.name)
    versions = pinned_versions(name)
    assert versions, f"{requirement} is not in requirements.lock: regenerate it with .ci/lock"
    # A universal lock may pin one release per Python version (numpy for 3.11 and 3.12+): each must fit.
    for version in versions:
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside pyproject.toml's {requirement}:"
            " regenerate it with .ci/lock"
        )


@pytest.mark.parametrize("requirement", [r for r in declared_requirements() if r.extras], ids=str)
def test_extras_of_declared_dependencies_are_locked(requirement: Requirement) -> None:
    # psycopg[binary] is psycopg plus psycopg-binary: the extra's packages need pins too.
    locked = {p.name for p in locked_pins()}
    for extra in requirement.extras:
        for needed in map(Requirement, metadata.requires(requirement.name) or []):
            if needed.marker is not None and needed.marker.evaluate({"extra": extra}):
                assert canonicalize_name(needed.name) in locked, f"{requirement} needs {needed.name}"


def test_lock_covers_this_python_and_every_platform() -> None:
    # uv's --universal turns platform and Python differences into markers instead of leaving
    # out what the machine that ran it did not need (colorama, which pytest needs on Windows).
    pins = locked_pins()
    assert "colorama" in {p.name for p in pins}
    for name in ("numpy", "pymap"):
        applicable = [
            p
            for p in pins
            if p.name == name and (p.requirement.marker is None or p.requirement.marker.evaluate())
        ]
        assert len(applicable) == 1, f"{name}: {[str(p.requirement) for p in applicable]}"


def test_lock_says_how_to_regenerate_it() -> None:
    header = LOCK.read_text().split("\n", 3)[:3]
    assert any(".ci/lock" in line for line in header), header
    script = ROOT / ".ci" / "lock"
    assert script.is_file() and os.access(script, os.X_OK)


def test_ci_and_the_readme_install_from_the_lock() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv .venv"))
    assert "--require-hashes -r requirements.lock" in command and "--no-deps" in command, command
    readme_commands = (ROOT / "README.md").read_text().split("```", 2)[1].splitlines()
    assert command in readme_commands, "the README's second command is not the one .ci/run runs"


def test_the_run_lock_is_the_test_lock_without_the_test_tools() -> None:
    everything = {
        (p.name, str(p.requirement.specifier), str(p.requirement.marker)): p.hashes for p in locked_pins()
    }
    run = locked_pins(RUN_LOCK)
    assert run, "requirements-run.lock is empty"
    for pin in run:
        key = (pin.name, str(pin.requirement.specifier), str(pin.requirement.marker))
        # Same version, same files: the bot runs on exactly what CI tested.
        assert everything.get(key) == pin.hashes, f"{key} differs from requirements.lock"
    names = {p.name for p in run}
    assert "pytest" not in names and "playwright" not in names
    runtime = [
        Requirement(r)
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ]
    assert {canonicalize_name(r.name) for r in runtime} <= names


def test_the_readme_runs_the_bot_from_the_run_lock() -> None:
    first = (ROOT / "README.md").read_text().split("```", 2)[1].splitlines()[1]
    assert "--require-hashes -r requirements-run.lock" in first and "supportbot run" in first, first
