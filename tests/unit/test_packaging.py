"""pyproject.toml lists the wheel's packages by hand (templates/ and migrations/ are mapped
into bot.resources, which setuptools' finder cannot do): a package added under bot/,
handlers/ or rota/ and forgotten there would be missing from every installed bot."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

from bot.resources import migrations_dir, templates_dir

ROOT = Path(__file__).resolve().parents[2]


def _setuptools() -> dict:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"])


def test_every_code_package_is_listed() -> None:
    code = set(find_packages(str(ROOT), include=["bot", "bot.*", "handlers", "handlers.*", "rota", "rota.*"]))
    listed = set(_setuptools()["packages"])
    assert code <= listed, f"add to [tool.setuptools] packages: {sorted(code - listed)}"


def test_templates_and_migrations_ship_from_the_top_of_the_repository() -> None:
    config = _setuptools()
    assert config["package-dir"] == {
        "bot.resources.templates": "templates",
        "bot.resources.migrations": "migrations",
    }
    # From a checkout (the editable install), the package data is the repository's directories.
    assert templates_dir() == ROOT / "templates"
    assert migrations_dir() == ROOT / "migrations"
