"""The default reply templates, shipped in the wheel as the package `bot.resources.templates`.

This file only makes the directory a package that `importlib.resources` can find (see
`bot/resources/__init__.py`); the loader reads `*.txt` and `*.html` here and ignores it.
"""
