"""The database: engine, sessions, schema.

The topic modules of models (`models_<topic>.py`) import `Base` from `models`; they are
imported here, not at the end of `models`, so that every table is in `Base.metadata`
whoever imports the models first, without an import cycle.
"""

from bot.storage import models_health  # noqa: F401
