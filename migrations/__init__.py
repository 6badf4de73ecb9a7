"""The Alembic migrations, shipped in the wheel as the package `bot.resources.migrations`.

This file only makes the directory a package that `importlib.resources` can find (see
`bot/resources/__init__.py`); Alembic runs `env.py` and `versions/` by path and ignores it.
"""
