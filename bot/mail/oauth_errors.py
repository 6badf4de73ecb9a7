"""The providers' refusals, each turned into one sentence that says what to do.

The sentence goes to the log and to the notice in Slack, read by whoever runs the bot, who
does not know what AADSTS7000215 means. Codes are Microsoft Entra's (AADSTS…, listed at
learn.microsoft.com/entra/identity-platform/reference-error-codes) and Google's OAuth 2.0
token endpoint errors (RFC 6749 section 5.2 plus their error_description).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# AADSTS code → what the person running the bot should do.
_MICROSOFT: dict[int, str] = {
    7000215: (
        "Microsoft refused the client secret (AADSTS7000215): copy the secret's Value (not its ID) "
        "from the app registration's Certificates & secrets into MS_CLIENT_SECRET"
    ),
    7000222: (
        "The client secret has expired (AADSTS7000222): add a new one under the app registration's "
        "Certificates & secrets and put it in MS_CLIENT_SECRET"
    ),
    700016: (
        "Microsoft does not know this app in this tenant (AADSTS700016): check MS_CLIENT_ID and "
        "MS_TENANT_ID against the app registration's Overview page"
    ),
    90002: "Microsoft does not know this tenant (AADSTS90002): check MS_TENANT_ID",
    65001: (
        "The app has no consent for the mailbox permissions (AADSTS65001), or it was revoked: "
        "an admin must grant admin consent under the app registration's API permissions, "
        "then run `supportbot auth microsoft` again for device-code sign-in"
    ),
    50173: (
        "The mailbox's sign-in was revoked (AADSTS50173, e.g. its password changed): "
        "run `supportbot auth microsoft` again"
    ),
    700082: (
        "The stored sign-in expired after long inactivity (AADSTS700082): "
        "run `supportbot auth microsoft` again"
    ),
    70008: "The stored sign-in has expired (AADSTS70008): run `supportbot auth microsoft` again",
    700024: (
        "Microsoft says the client assertion's time is out of range (AADSTS700024): "
        "this machine's clock is wrong; synchronise it (NTP)"
    ),
    700027: (
        "Microsoft refused the certificate (AADSTS700027): upload this certificate to the app "
        "registration, or check MS_CLIENT_CERTIFICATE_FILE"
    ),
    7000112: "The app registration is disabled (AADSTS7000112): an admin must enable it in Microsoft Entra",
    50076: (
        "Conditional Access asks for multi-factor authentication (AADSTS50076): "
        "run `supportbot auth microsoft` again, or exclude the mailbox from the policy"
    ),
    53003: (
        "Conditional Access blocked the sign-in (AADSTS53003): "
        "an admin must allow this app or location in Entra"
    ),
    500011: (
        "Exchange Online is not available in this tenant (AADSTS500011): check MS_TENANT_ID "
        "and that the tenant has Exchange Online"
    ),
}


def microsoft_error(result: Mapping[str, Any]) -> str:
    """One sentence for msal's error result ({"error", "error_description", "error_codes"})."""
    listed = result.get("error_codes")
    listed = listed if isinstance(listed, list) else []
    # ASCII digits only: str.isdigit() and \d also take "²", which int() refuses.
    codes = [int(c) for c in listed if re.fullmatch(r"[0-9]{1,9}", str(c))]
    description = str(result.get("error_description") or "")
    codes += [int(c) for c in re.findall(r"AADSTS([0-9]{1,9})", description)]
    for code in codes:
        if code in _MICROSOFT:
            return _MICROSOFT[code]
    error = _one_line(str(result.get("error") or "")) or "unknown_error"
    if error in ("expired_token", "code_expired"):
        return "Nobody signed in before the code expired: run `supportbot auth microsoft` again"
    if error == "authorization_declined":
        return "The sign-in was declined: run `supportbot auth microsoft` again and accept"
    if error == "invalid_grant":
        return "Microsoft refused the stored sign-in (invalid_grant): run `supportbot auth microsoft` again"
    return f"Microsoft refused the token request ({_one_line(description) or error}); check the MS_* settings"


def google_error(data: Mapping[str, Any] | str | None, *, installed_app: bool) -> str:
    """One sentence for Google's token endpoint error (the body of google-auth's RefreshError)."""
    if not isinstance(data, Mapping):
        return f"Google refused the token request ({_one_line(str(data))}); check the GOOGLE_* settings"
    error = _one_line(str(data.get("error") or ""))
    description = str(data.get("error_description") or "")
    lowered = description.lower()
    if error == "invalid_grant" and ("iat" in lowered or "timeframe" in lowered or "exp " in lowered):
        return (
            "Google says the token request's time is out of range (invalid_grant: Invalid JWT): "
            "this machine's clock is wrong; synchronise it (NTP)"
        )
    if error == "invalid_grant" and installed_app:
        return (
            "Google refused the stored refresh token (invalid_grant: expired or revoked): "
            "run `supportbot auth google` again"
        )
    if error == "invalid_grant" and ("email" in lowered or "user" in lowered):
        return (
            "Google does not know the mailbox IMAP_USER in this Workspace (invalid_grant): "
            "check IMAP_USER is a user of the domain that granted delegation"
        )
    if error == "invalid_grant" and "signature" in lowered:
        return (
            "Google refused the service account's key (invalid_grant: Invalid JWT Signature): "
            "the key was deleted; download a new key into GOOGLE_SERVICE_ACCOUNT_FILE"
        )
    if error == "unauthorized_client":
        return (
            "Google refused delegation (unauthorized_client): a Workspace admin must add the service "
            "account's client ID with the scope https://mail.google.com/ under Security > API controls "
            "> Domain-wide delegation"
        )
    if error in ("invalid_client", "deleted_client"):
        return f"Google does not accept this OAuth client ({error}): check the file in " + (
            "GOOGLE_CLIENT_SECRETS_FILE" if installed_app else "GOOGLE_SERVICE_ACCOUNT_FILE"
        )
    said = _one_line(f"{error}: {description}")
    return f"Google refused the token request ({said}); check the GOOGLE_* settings"


def _one_line(text: str) -> str:
    """The first line, cut: a provider's description may run to a paragraph."""
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else ""
