"""Storage: the schema (models.py and the models_<topic>.py beside it), sessions, backups.

Each topic's tables live in a module of their own that imports `Base` from models.py;
importing them here (not at the end of models.py, which would be an import cycle) puts
their tables in `Base.metadata` whenever anything of storage is imported, so Alembic's
checks, backups and `db copy` see them.
"""

from bot.storage import models_phone  # noqa: F401
