"""The database: engine and sessions (db), the schema (models, and a module per topic).

Each topic's tables (models_<topic>.py) import `Base` from models; they are imported here,
not at the end of models.py (an import cycle), so whoever imports any storage module gets
every table in `Base.metadata`: migrations' checks, backups and `db copy` see them all.
"""

from bot.storage import models_health, models_ical, models_oauth, models_phone, models_privacy  # noqa: F401
