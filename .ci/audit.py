"""CI's dependency audit: pip-audit over requirements.lock; exits 1 on any known vulnerability.

pip-audit asks PyPI about each pinned release (https://pypi.org/pypi/NAME/VERSION/json).
When that page cannot be had (a network that reaches only PyPI's index and project pages,
or an outage) pip-audit skips the pin and, without --strict, still prints "No known
vulnerabilities found". A skip must never pass for clean, so every pin pip-audit did not
audit is looked up on its project page (https://pypi.org/pypi/NAME/json): when the pin is the
project's latest release, that page's `vulnerabilities` list (the same PyPI records pip-audit
reads) is the pin's own, and it is audited from there; any other pin is reported as NOT
AUDITED, with the reason. The lock pins every platform's and Python's releases; pip-audit
sees only this interpreter's, so the others are looked up here as well.

Run with the Python of a venv holding pip-audit (`.ci/run` makes one):
    python .ci/audit.py requirements.lock [--strict]
--strict also fails when any pin could not be audited.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from packaging.utils import canonicalize_name

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
PROJECT_PAGE = "https://pypi.org/pypi/{name}/json"


def locked_pins(lock: Path) -> set[tuple[str, str]]:
    pins = set()
    for line in lock.read_text().splitlines():
        if match := PIN.match(line):
            pins.add((canonicalize_name(match[1]), match[2]))
    return pins


def run_pip_audit(lock: Path) -> tuple[dict[tuple[str, str], list[dict]], dict[str, str], str]:
    """Vulnerabilities of the pins pip-audit audited, its skip reasons, and its error if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        command = [sys.executable, "-m", "pip_audit", "-r", str(lock), "--disable-pip", "--require-hashes"]
        command += ["--progress-spinner", "off", "--desc", "on", "--format", "json", "-o", str(report)]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
        )
        if not report.is_file():
            return {}, {}, (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        dependencies = json.loads(report.read_text())["dependencies"]
    audited = {(canonicalize_name(d["name"]), d["version"]): d["vulns"] for d in dependencies if "vulns" in d}
    skipped = {canonicalize_name(d["name"]): d["skip_reason"] for d in dependencies if "skip_reason" in d}
    return audited, skipped, ""


def audit_from_project_page(name: str, version: str) -> tuple[list[dict] | None, str]:
    """The pin's vulnerabilities when it is the latest release, else None and why not."""
    try:
        with urllib.request.urlopen(PROJECT_PAGE.format(name=name), timeout=30) as response:
            page = json.load(response)
    except OSError as exc:
        return None, f"PyPI's project page is unreachable too ({exc})"
    latest = page["info"]["version"]
    if latest != version:
        return None, f"not the latest release ({latest}), the only one PyPI's project page describes"
    vulns = [
        {
            "id": v["id"],
            "fix_versions": v.get("fixed_in") or [],
            "description": (v.get("summary") or v.get("details") or "").strip().split("\n")[0][:200],
        }
        for v in page.get("vulnerabilities") or []
        if not v.get("withdrawn")
    ]
    return vulns, ""


def main(lock: Path, strict: bool) -> int:
    pins = locked_pins(lock)
    audited, skipped, failure = run_pip_audit(lock)
    found = {pin: vulns for pin, vulns in audited.items() if vulns}
    by_project_page: list[tuple[str, str]] = []
    not_audited: dict[tuple[str, str], str] = {}
    for name, version in sorted(pins - audited.keys()):
        vulns, why = audit_from_project_page(name, version)
        if vulns is None:
            pip_audit_said = failure or skipped.get(name) or "not installed on this Python, so not asked"
            not_audited[(name, version)] = f"pip-audit: {pip_audit_said}; {why}"
            continue
        by_project_page.append((name, version))
        if vulns:
            found[(name, version)] = vulns

    print(
        f"audit of {lock}: {len(pins)} pins; {len(audited)} audited by pip-audit, "
        f"{len(by_project_page)} from PyPI's project page (pin is the latest release)"
    )
    if not audited:
        print(
            "  pip-audit could audit nothing: PyPI's per-release pages (pypi.org/pypi/NAME/VERSION/json)"
            f" were not available from here ({failure or 'it skipped every pin'})"
        )
    for (name, version), why in sorted(not_audited.items()):
        print(f"  NOT AUDITED {name}=={version}: {why}")
    for (name, version), vulns in sorted(found.items()):
        for vuln in vulns:
            fixed = ", ".join(vuln["fix_versions"]) or "no fixed release"
            print(f"  VULNERABLE {name}=={version}: {vuln['id']} (fixed in: {fixed}) {vuln['description']}")
    if found:
        print(f"audit FAILED: known vulnerabilities in {len(found)} pinned package(s); upgrade them")
        return 1
    if not_audited:
        print(
            f"audit INCOMPLETE: no known vulnerability in the {len(pins) - len(not_audited)} pins audited; "
            f"{len(not_audited)} could not be audited from here (above)"
        )
        return 1 if strict else 0
    print("audit clean: no known vulnerabilities in any pin")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(Path(next(a for a in args if not a.startswith("--"))), "--strict" in args))
