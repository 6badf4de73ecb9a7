"""Files the bot reads at run time, found through `importlib.resources`.

`templates/` and `migrations/` stay at the top of the repository, where a reader looks for
them; pyproject.toml maps them to the packages `bot.resources.templates` and
`bot.resources.migrations` (setuptools `package-dir`), so a wheel carries them inside `bot/`
and an editable install finds them in the checkout. Never a path relative to this file:
installed, the source tree is not there.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

TEMPLATES = "bot.resources.templates"
MIGRATIONS = "bot.resources.migrations"


def directory(package: str) -> Path:
    """The directory holding `package`'s files, as a real path: Alembic and the template
    loader read files by path, so a package inside a zip file cannot serve them."""
    found = resources.files(package)
    if not isinstance(found, Path) or not found.is_dir():
        raise RuntimeError(f"{package} is not installed as a directory of files (got {found!r})")
    return found


def templates_dir() -> Path:
    """The default reply templates (`TEMPLATES_DIR` points elsewhere to use your own)."""
    return directory(TEMPLATES)


def migrations_dir() -> Path:
    """The Alembic environment and revisions."""
    return directory(MIGRATIONS)
