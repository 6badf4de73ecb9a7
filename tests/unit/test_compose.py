"""compose.yaml is a valid Compose file, sets only settings the bot reads, and every health
check asks the bot's /healthz.

The schema is the Compose Specification's, vendored from a PyPI wheel (see the `$comment` in
tests/support/compose_spec.json): no compose tool runs on our machines to check it for us.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft201909Validator

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "support" / "compose_spec.json"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "compose.yaml").read_text()))


def _settings_the_bot_reads() -> set[str]:
    """Every name the settings reader is asked for (`r.text("HTTP_PORT", …)` and the like)."""
    read = re.compile(r"\b(?:r|reader)\.[a-z_]+\(\s*\"([A-Z][A-Z0-9_]+)\"")
    names: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        names.update(read.findall(path.read_text()))
    return names


def _bot_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("supportbot:")
    }


def test_it_follows_the_compose_specification() -> None:
    validator = Draft201909Validator(json.loads(SCHEMA.read_text()))
    errors = sorted(validator.iter_errors(_compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_catches_a_mistake() -> None:
    broken = _compose()
    broken["services"]["bot"]["restart"] = {"always": True}
    broken["services"]["db"]["healthcheck"]["interval"] = 10
    assert len(list(Draft201909Validator(json.loads(SCHEMA.read_text())).iter_errors(broken))) == 2


def test_socket_mode_on_postgresql_by_default_and_two_http_replicas_behind_haproxy() -> None:
    compose = _compose()
    services = compose["services"]
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == {"db", "bot"}
    assert services["db"]["image"].startswith("postgres:")
    assert "pgdata" in compose["volumes"]
    assert any(volume.startswith("pgdata:") for volume in services["db"]["volumes"])
    assert services["bot"]["environment"]["DATABASE_URL"].startswith("postgresql://")
    http = services["bot-http"]
    assert http["profiles"] == ["http"] and http["deploy"]["replicas"] == 2
    assert http["environment"]["SLACK_APP_TOKEN"] == ""  # HTTP mode whatever the env file says
    assert services["proxy"]["profiles"] == ["http"]
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
    for service in _bot_services(compose).values():
        assert service["env_file"] == "supportbot.env"  # secrets come from the file, not from here
        assert service["depends_on"]["db"]["condition"] == "service_healthy"


def test_it_sets_only_settings_the_bot_reads() -> None:
    settings = _settings_the_bot_reads()
    assert {"DATABASE_URL", "HTTP_HOST", "SLACK_APP_TOKEN"} <= settings  # the reader was found
    bots = _bot_services(_compose())
    assert set(bots) == {"bot", "bot-http"}
    for name, service in bots.items():
        unknown = set(service["environment"]) - settings
        assert not unknown, f"{name} sets {sorted(unknown)}, which the bot never reads"
    # supportbot.env starts as a copy of .env.example.
    example = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]+=", line)
    }
    assert example and not example - settings, sorted(example - settings)


def test_every_health_check_asks_healthz() -> None:
    services = _compose()["services"]
    for name, service in _bot_services(_compose()).items():
        probe = " ".join(service["healthcheck"]["test"])
        port = service["environment"]["HTTP_PORT"]
        assert f"http://127.0.0.1:{port}/healthz" in probe, name
    assert "/healthz" in " ".join(services["proxy"]["healthcheck"]["test"])
    haproxy = (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    assert re.search(r"^\s*option httpchk GET /healthz$", haproxy, re.M)
    port = services["bot-http"]["environment"]["HTTP_PORT"]
    assert re.search(rf"^\s*server-template bot 2 bot-http:{port}\b", haproxy, re.M)
    containerfile = (ROOT / "Containerfile").read_text()
    assert re.search(r"HEALTHCHECK .*\n.*/healthz", containerfile)
