"""`supportbot`: run the bot and manage its database."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import threading
from pathlib import Path

from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from bot.config import ConfigError, Settings, load_settings, redact_url
from bot.logs import configure_logging, redact
from bot.signals import StopSignal
from bot.storage.backup import BackupError, backup, restore
from bot.storage.copy import CopyError, copy_database
from bot.storage.db import current_revision, downgrade, make_engine, make_sessionmaker, upgrade

log = logging.getLogger("supportbot")


def _settings(args: argparse.Namespace) -> Settings | None:
    """The settings from the environment and --env-file; None once the one-line error is printed."""
    try:
        return load_settings(dotenv=Path(args.env_file) if args.env_file else None)
    except ConfigError as exc:
        print(f"supportbot: configuration error: {exc}", file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    if settings.sandbox:
        # why: the sandbox embeds pymap and aiosmtpd, which a real deployment never loads.
        from bot.sandbox.runner import run_sandbox

        return run_sandbox(settings)
    # why: the composition root loads Bolt, the scheduler and every handler; imported after
    # validation so a bad setting is reported before anything heavy loads.
    from bot.app import SupportBot, prepare_database, verify_slack_token

    configure_logging(settings.log_level, secrets=settings.secrets(), log_format=settings.log_format)
    log.info("database %s", redact_url(settings.database_url))
    try:
        prepare_database(settings)
    except Exception as exc:
        # Printed, not logged, so the log filter does not see it: a driver may quote the URL.
        problem = redact(_database_problem(exc), settings.secrets())
        print(f"supportbot: cannot prepare the database at DATABASE_URL: {problem}", file=sys.stderr)
        return 2
    stop = StopSignal()
    bot = SupportBot(settings)
    try:
        verify_slack_token(bot.client)
    except ConfigError as exc:
        print(f"supportbot: configuration error: {redact(str(exc), settings.secrets())}", file=sys.stderr)
        return 2
    try:
        bot.start()
    except ConfigError as exc:
        print(f"supportbot: configuration error: {redact(str(exc), settings.secrets())}", file=sys.stderr)
        return 2
    settle_start_up_objects()
    print(f"supportbot running: {bot.url}/healthz (Ctrl-C to stop)", flush=True)
    stop.wait()
    _exit_within(_STOP_BUDGET_SECONDS)
    bot.stop()
    return 0


def settle_start_up_objects() -> None:
    """Keep what start-up built out of the garbage collector's full passes.

    Modules, ORM mappers, Bolt's listeners and the like live as long as the process, yet
    every full collection walked them all: 90-120 ms with every thread stopped, a pause any
    request in flight waits out (seen in the claim benchmark). Frozen (`gc.freeze`), a full
    pass walks only what was made since: 8 ms. Not in SupportBot.start: a
    test process starts many bots, and frozen cycles are never collected.
    """
    gc.collect()
    gc.freeze()


# Process managers send SIGKILL some time after SIGTERM (Docker and systemd: 10-90 s).
_STOP_BUDGET_SECONDS = 12.0


def _exit_within(seconds: float) -> None:
    """Exit within `seconds` of being asked to stop, even if a thread lingers.

    Python joins thread-pool workers at exit (Bolt's listeners, the scheduler's jobs);
    one waiting on a database lock would keep a stopping bot alive for the lock's whole
    timeout. All work is transactional, so cutting it short loses nothing.
    """

    def force() -> None:
        lingering = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon]
        log.warning("still waiting for %s while stopping; exiting anyway", ", ".join(lingering) or "threads")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


def _db(args: argparse.Namespace) -> int:
    try:
        settings_url = _database_url(args)
    except ConfigError as exc:
        print(f"supportbot: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.db_command in ("backup", "restore", "copy"):
        return _db_data(args, settings_url)
    try:
        if args.db_command == "upgrade":
            upgrade(settings_url, args.revision)
        elif args.db_command == "downgrade":
            downgrade(settings_url, args.revision)
        engine = make_engine(settings_url)
        try:
            revision = current_revision(engine)
        finally:
            engine.dispose()
    except Exception as exc:
        # One line, as `run` gives: an unreachable server or an unknown revision is not a
        # crash, and a traceback can quote the URL, password and all.
        problem = redact(_database_problem(exc), [make_url(settings_url).password])
        verb = "read" if args.db_command == "current" else args.db_command
        print(f"supportbot: cannot {verb} the database at DATABASE_URL: {problem}", file=sys.stderr)
        return 2
    print(f"database {redact_url(settings_url)} at revision {revision}")
    return 0


def _db_data(args: argparse.Namespace, url: str) -> int:
    """backup, restore and copy: whole-database operations, each reported on one line."""
    secrets = [make_url(url).password, *([make_url(args.to).password] if getattr(args, "to", None) else [])]
    try:
        if args.db_command == "backup":
            backup(url, Path(args.file))
            print(f"backed up {redact_url(url)} to {args.file}")
        elif args.db_command == "restore":
            revision = restore(url, Path(args.file), force=args.force)
            print(f"restored {args.file} into {redact_url(url)}, now at revision {revision}")
        else:
            counts = copy_database(url, _normalised(args.to))
            for table, count in counts.items():
                print(f"{table}: {count}")
            print(f"copied {sum(counts.values())} rows to {redact_url(args.to)}; the counts match")
    except (BackupError, CopyError) as exc:
        print(f"supportbot: db {args.db_command}: {redact(str(exc), secrets)}", file=sys.stderr)
        return 2
    except Exception as exc:
        problem = redact(_database_problem(exc), secrets)
        print(f"supportbot: db {args.db_command}: {problem}", file=sys.stderr)
        return 2
    return 0


def _database_problem(exc: Exception) -> str:
    """The driver's own words, on one line, without SQLAlchemy's wrapping and link."""
    cause = getattr(exc, "orig", None) or exc
    return " ".join(str(cause).split()) or type(cause).__name__


def _database_url(args: argparse.Namespace) -> str:
    """Only DATABASE_URL is needed to manage the schema; the rest may be unset."""
    env = dict(dotenv_values(args.env_file or ".env")) if Path(args.env_file or ".env").is_file() else {}
    env.update(os.environ)
    url = _normalised((env.get("DATABASE_URL") or "").strip() or "sqlite:///supportbot.sqlite3")
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise ConfigError("DATABASE_URL must be a sqlite:/// or postgresql:// URL")
    return url


def _normalised(url: str) -> str:
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    if settings.sandbox:
        print("# no SLACK_BOT_TOKEN: `supportbot run` starts the sandbox, whose stand-ins fill in Slack,")
        print("# the mailbox, SMTP and the database (their ports are chosen when it starts)")
    for key, value in settings.redacted().items():
        print(f"{key} = {value}")
    if not args.connect:
        return 0
    if settings.sandbox:
        print("# --connect: nothing to connect to, the sandbox's stand-ins start with it")
        return 0
    return _check_connections(settings)


def _check_connections(settings: Settings) -> int:
    """Log in to IMAP and SMTP as the bot would; one line each; 1 if either failed."""
    # why: imported here so a plain check-config loads no mail client libraries.
    from bot.clock import SystemClock
    from bot.mail.connect_check import check_mail_connections
    from bot.mail.xoauth2 import mail_token_source
    from bot.storage.db import make_sessionmaker

    configure_logging(settings.log_level, secrets=settings.secrets(), log_format=settings.log_format)
    engine = make_engine(settings.database_url)
    try:
        # Tokens are kept in the database (shared by replicas), so the check uses the same ones.
        source = mail_token_source(settings, make_sessionmaker(engine), SystemClock())
        outcomes = check_mail_connections(settings, source)
    finally:
        engine.dispose()
    for outcome in outcomes:
        print(("ok      " if outcome.ok else "FAILED  ") + redact(outcome.line, settings.secrets()))
    return 0 if all(o.ok for o in outcomes) else 1


def _auth(args: argparse.Namespace) -> int:
    """Sign the mailbox in once (device code, or Google's installed-app flow) and store it."""
    settings = _settings(args)
    if settings is None:
        return 2
    if settings.sandbox:
        print(
            f"supportbot: auth {args.provider}: set SLACK_BOT_TOKEN first: the sandbox uses no real mailbox",
            file=sys.stderr,
        )
        return 2
    if settings.mail_oauth is None or settings.mail_oauth.provider != args.provider:
        print(f"supportbot: auth {args.provider}: set MAIL_AUTH={args.provider} first", file=sys.stderr)
        return 2
    # why: msal and google-auth-oauthlib load only for this command.
    from bot.clock import SystemClock
    from bot.mail.oauth_signin import sign_in_google, sign_in_microsoft
    from bot.mail.oauth_token import TokenError

    secrets = settings.secrets()
    try:
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
    except Exception as exc:
        problem = redact(_database_problem(exc), secrets)
        print(f"supportbot: cannot prepare the database at DATABASE_URL: {problem}", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        factory = make_sessionmaker(engine)
        if args.provider == "microsoft":
            note = sign_in_microsoft(settings.mail_oauth, factory, SystemClock(), say)
        else:
            note = sign_in_google(
                settings.mail_oauth,
                factory,
                SystemClock(),
                say,
                port=args.port,
                open_browser=not args.no_browser,
            )
    except TokenError as exc:
        print(f"supportbot: auth {args.provider}: {redact(str(exc), secrets)}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(note, flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="supportbot", description=__doc__)
    parser.add_argument("--env-file", help="read settings from this file instead of ./.env")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the bot").set_defaults(func=_run)
    check = sub.add_parser("check-config", help="validate settings and print them (secrets hidden)")
    check.add_argument(
        "--connect",
        action="store_true",
        help="also log in to IMAP (open the folder) and SMTP (no mail sent) and say what worked",
    )
    check.set_defaults(func=_check_config)
    auth = sub.add_parser("auth", help="sign the mailbox in for OAuth (MAIL_AUTH) and store the token")
    auth.add_argument("provider", choices=["microsoft", "google"])
    auth.add_argument("--port", type=int, default=0, help="google: the local port the browser returns to")
    auth.add_argument("--no-browser", action="store_true", help="google: print the address, open no browser")
    auth.set_defaults(func=_auth)
    db = sub.add_parser("db", help="manage the database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations (default: to the newest)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="revert migrations to a revision")
    down.add_argument("revision")
    db_sub.add_parser("current", help="show the applied revision")
    back = db_sub.add_parser("backup", help="write a consistent copy of the database, while the bot runs")
    back.add_argument("file")
    rest = db_sub.add_parser("restore", help="load a backup into an empty database, then upgrade it")
    rest.add_argument("file")
    rest.add_argument("--force", action="store_true", help="replace a database that holds data")
    copy = db_sub.add_parser("copy", help="copy everything into an empty PostgreSQL database")
    copy.add_argument("--to", required=True, metavar="postgresql://…")
    db.set_defaults(func=_db)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
