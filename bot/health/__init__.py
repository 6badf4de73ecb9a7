"""Connection health: whether the mailbox and the mail server work, outages announced once,
and what `/support status` reports. Plain functions over a session; the words are in
bot/slack (health_notices.py, status.py)."""
