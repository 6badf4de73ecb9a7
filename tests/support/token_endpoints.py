"""Microsoft's and Google's token endpoints as one local HTTPS server, for the real msal and
google-auth to talk to over a socket.

msal accepts only an https authority, so the server has a self-signed certificate made
here (`ca_file` for requests' `verify`, or REQUESTS_CA_BUNDLE for a subprocess).

Microsoft (identity platform v2.0), under /{tenant}/: the OpenID discovery document, the
token endpoint (client_credentials, device_code, refresh_token) and the device
authorization endpoint. Errors carry AADSTS codes in `error_description` and `error_codes`
as Entra sends them. Google, under /google/: the token endpoint (a service account's
JWT bearer assertion, verified with the account's public key; refresh_token;
authorization_code) and an authorization endpoint that consents at once and redirects.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlparse

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.tls import self_signed

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


def service_account_key(
    token_uri: str, email: str = "bot@project.iam.gserviceaccount.com"
) -> tuple[dict[str, Any], Any]:
    """A Google service account key file's content, and the public key to verify it with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    info = {
        "type": "service_account",
        "project_id": "project",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem.decode(),
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    return info, key.public_key()


def app_certificate(directory: Path) -> tuple[Path, x509.Certificate]:
    """An app registration's certificate: one PEM file (key and certificate) and the certificate."""
    own = directory / "app-certificate"
    own.mkdir()
    cert_file, key_file = self_signed(own, common_name="supportbot", dns_names=("localhost",), use_rsa=True)
    path = own / "credential.pem"
    path.write_bytes(key_file.read_bytes() + cert_file.read_bytes())
    return path, x509.load_pem_x509_certificate(cert_file.read_bytes())


@dataclass
class MicrosoftApp:
    client_id: str
    secret: str | None = None
    consented: bool = True
    certificate: x509.Certificate | None = None  # uploaded under Certificates & secrets


@dataclass
class Issued:
    provider: str
    grant: str
    access_token: str
    account: str  # the mailbox the token opens ("" for an app-only token with no mailbox set)
    expires: float = float("inf")  # time.time() when introspection stops calling it active


@dataclass
class TokenEndpoints:
    """Set the behaviour, start with `with`, then read `issued` and `requests`."""

    directory: Path
    tenant: str = "contoso-tenant"
    expires_in: int = 3600
    microsoft_apps: dict[str, MicrosoftApp] = field(default_factory=dict)
    device_polls_before_approval: int = 2
    device_user: str = "support@contoso.example"
    app_mailbox: str = ""  # the mailbox an app-only token may open (Add-MailboxPermission)
    google_user: str = "support@gmail.example"  # who signs in through the installed-app flow
    # Google: service accounts (email → public key) and the subjects each may act for.
    google_accounts: dict[str, Any] = field(default_factory=dict)
    google_delegation: dict[str, set[str]] = field(default_factory=dict)
    google_clients: dict[str, str] = field(default_factory=dict)  # installed app: client id → secret
    clock_offset: float = 0.0  # seconds the server's clock is ahead of ours (clock skew)
    issued: list[Issued] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    revoked_refresh_tokens: set[str] = field(default_factory=set)
    revoked_access_tokens: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.cert_file, self.key_file = self_signed(
            self.directory, common_name="localhost", dns_names=("localhost",), use_rsa=True
        )
        self.ca_file = self.cert_file
        self._lock = threading.Lock()
        self._refresh_tokens: dict[str, str] = {}  # refresh token → "microsoft" | client id
        self._device_codes: dict[str, int] = {}  # device code → polls so far
        self._device_scopes: dict[str, str] = {}  # device code → the scopes asked for with it
        self._auth_codes: dict[str, str] = {}  # google authorization code → client id

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> TokenEndpoints:
        endpoints = self

        class Handler(_Handler):
            owner = endpoints

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://localhost:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def session(self) -> requests.Session:
        """A requests session that trusts this server. trust_env off: REQUESTS_CA_BUNDLE in
        the environment would otherwise override `verify`."""
        http = requests.Session()
        http.trust_env = False
        http.verify = str(self.ca_file)
        return http

    @property
    def google_token_uri(self) -> str:
        return f"{self.url}/google/token"

    def valid(self, access_token: str) -> bool:
        """Whether this server issued the token."""
        return self.introspect(access_token)["active"]

    def introspect(self, access_token: str) -> dict[str, Any]:
        """RFC 7662 token introspection, as a mail server's OAuth check (Dovecot's oauth2
        passdb) asks at `{url}/introspect`: GET with the token as Bearer, or POST token=…"""
        with self._lock:
            found = next((i for i in self.issued if i.access_token == access_token), None)
            revoked = access_token in self.revoked_access_tokens
        # RFC 7662 §2.2: an expired or revoked token is simply inactive.
        if found is None or revoked or found.expires <= time.time():
            return {"active": False}
        return {"active": True, "email": found.account, "username": found.account, "sub": found.account}

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far stops working (consent withdrawn, secret reset,
        or the tenant's continuous access evaluation), though none has expired."""
        with self._lock:
            self.revoked_access_tokens |= {i.access_token for i in self.issued}

    def revoke_all_refresh_tokens(self) -> None:
        with self._lock:
            self.revoked_refresh_tokens |= set(self._refresh_tokens)

    def grants(self, provider: str) -> list[str]:
        with self._lock:
            return [i.grant for i in self.issued if i.provider == provider]

    # -- Microsoft --------------------------------------------------------------------
    def _openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.url}/{tenant}"
        return {
            "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
        }

    def _microsoft_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        app = self.microsoft_apps.get(form.get("client_id", ""))
        if app is None:
            return _aad(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory "
                f"'{self.tenant}'.",
            )
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            if "client_assertion" in form:
                refusal = self._check_assertion(app, form["client_assertion"])
                if refusal is not None:
                    return refusal
            elif form.get("client_secret") != app.secret:
                return _aad(401, "invalid_client", 7000215, "Invalid client secret provided.")
            if not app.consented:
                return _aad(400, "invalid_grant", 65001, "The user or administrator has not consented.")
            return 200, self._access("microsoft", grant, form, account=self.app_mailbox)
        if grant == DEVICE_CODE:
            code = form.get("device_code", "")
            with self._lock:
                if code not in self._device_codes:
                    return _aad(400, "expired_token", 70019, "Verification code expired.")
                self._device_codes[code] += 1
                polls = self._device_codes[code]
            if polls <= self.device_polls_before_approval:
                return _aad(400, "authorization_pending", 70016, "Pending end-user authorization.")
            if not app.consented:
                return _aad(400, "invalid_grant", 65001, "The user or administrator has not consented.")
            return 200, self._delegated(app, grant, {**form, "scope": self._device_scopes[code]})
        if grant == "refresh_token":
            token = form.get("refresh_token", "")
            with self._lock:
                known = self._refresh_tokens.get(token) == "microsoft"
                revoked = token in self.revoked_refresh_tokens
            if not known:
                return _aad(
                    400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
                )
            if revoked or not app.consented:
                return _aad(
                    400,
                    "invalid_grant",
                    65001,
                    "The user or administrator has not consented to use the application.",
                )
            return 200, self._delegated(app, grant, form)
        return _aad(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
        )

    def _check_assertion(self, app: MicrosoftApp, assertion: str) -> tuple[int, dict[str, Any]] | None:
        """A certificate credential: the JWT names the certificate by thumbprint and is signed by its key."""
        header = jwt.get_unverified_header(assertion)
        cert = app.certificate
        thumbprint = (
            base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode().rstrip("=") if cert else None
        )
        # msal keeps the base64 padding; Entra takes the thumbprint either way.
        if cert is None or str(header.get("x5t#S256")).rstrip("=") != thumbprint:
            return _aad(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client "
                "assertion is not registered on application.",
            )
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),
                algorithms=["PS256", "RS256"],
                audience=f"{self.url}/{self.tenant}/oauth2/v2.0/token",
                issuer=app.client_id,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            return _aad(401, "invalid_client", 700027, "Client assertion failed signature validation.")
        now = time.time() + self.clock_offset
        if not (claims.get("nbf", claims["iat"]) - 300 <= now <= claims["exp"] + 300):
            return _aad(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")
        return None

    def _delegated(self, app: MicrosoftApp, grant: str, form: dict[str, str]) -> dict[str, Any]:
        body = self._access("microsoft", grant, form, account=self.device_user)
        refresh = "M." + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[refresh] = "microsoft"
        uid, utid = "user-oid", self.tenant
        now = int(time.time())
        claims = {
            "aud": app.client_id,
            "iss": f"https://login.microsoftonline.com/{utid}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "oid": uid,
            "tid": utid,
            "sub": "subject",
            "preferred_username": self.device_user,
            "name": "Support",
        }
        body.update(
            {
                "refresh_token": refresh,
                "scope": body["scope"],
                "id_token": jwt.encode(claims, "x" * 32, algorithm="HS256"),
                "client_info": base64.urlsafe_b64encode(json.dumps({"uid": uid, "utid": utid}).encode())
                .decode()
                .rstrip("="),
            }
        )
        return body

    def _device_code(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") not in self.microsoft_apps:
            return _aad(400, "unauthorized_client", 700016, "Application was not found in the directory.")
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._device_codes[code] = 0
            self._device_scopes[code] = form.get("scope", "")
        user_code = "ABCD-EFGH"
        uri = "https://microsoft.com/devicelogin"
        return 200, {
            "device_code": code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": 900,
            "interval": 1,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code {user_code} "
            "to authenticate.",
        }

    # -- Google -------------------------------------------------------------------------
    def _google_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        if grant == JWT_BEARER:
            return self._google_assertion(form.get("assertion", ""))
        if grant in ("refresh_token", "authorization_code"):
            client = form.get("client_id", "")
            if (
                self.google_clients.get(client) != form.get("client_secret")
                or client not in self.google_clients
            ):
                return 401, {
                    "error": "invalid_client",
                    "error_description": "The OAuth client was not found.",
                }
            if grant == "authorization_code":
                with self._lock:
                    owner = self._auth_codes.pop(form.get("code", ""), None)
                if owner != client:
                    return 400, {"error": "invalid_grant", "error_description": "Malformed auth code."}
                body = self._access("google", grant, account=self.google_user)
                refresh = "1//" + secrets.token_urlsafe(24)
                with self._lock:
                    self._refresh_tokens[refresh] = client
                body["refresh_token"] = refresh
                return 200, body
            token = form.get("refresh_token", "")
            with self._lock:
                ok = self._refresh_tokens.get(token) == client and token not in self.revoked_refresh_tokens
            if not ok:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                }
            return 200, self._access("google", grant, account=self.google_user)
        return 400, {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant}"}

    def _google_assertion(self, assertion: str) -> tuple[int, dict[str, Any]]:
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False})["iss"]
            public_key = self.google_accounts[issuer]
            # Times are checked below, against this server's clock, as Google does.
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256"],
                # google-auth signs for Google's own token URI, wherever it sends the assertion.
                audience="https://oauth2.googleapis.com/token",
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except (jwt.PyJWTError, KeyError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        now = time.time() + self.clock_offset
        if not (claims["iat"] - 300 <= now <= claims["exp"] + 300) or claims["exp"] - claims["iat"] > 3600:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            }
        allowed = self.google_delegation.get(issuer, set())
        if (
            claims.get("sub") not in allowed
            or "https://mail.google.com/" not in str(claims.get("scope", "")).split()
        ):
            return 401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using this method, or "
                "client not authorized for any of the scopes requested.",
            }
        return 200, self._access("google", JWT_BEARER, account=str(claims["sub"]))

    def _google_authorize(self, query: dict[str, str]) -> str:
        """The user consents at once: where the browser is sent back."""
        code = "4/" + secrets.token_urlsafe(16)
        with self._lock:
            self._auth_codes[code] = query.get("client_id", "")
        back = {"code": code, "state": query.get("state", ""), "scope": query.get("scope", "")}
        return f"{query['redirect_uri']}?{urlencode(back)}"

    # -- common -------------------------------------------------------------------------
    def _access(
        self, provider: str, grant: str, form: dict[str, str] | None = None, *, account: str
    ) -> dict[str, Any]:
        token = ("EwB" if provider == "microsoft" else "ya29.") + secrets.token_urlsafe(32)
        with self._lock:
            self.issued.append(Issued(provider, grant, token, account, time.time() + self.expires_in))
        # Entra answers with the resource scopes granted (those asked for, without OIDC's own).
        asked = (form or {}).get("scope", "").split()
        granted = [s for s in asked if s not in ("openid", "profile", "offline_access")]
        scope = "https://mail.google.com/" if provider == "google" else " ".join(granted)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in, "scope": scope}


def _aad(status: int, error: str, code: int, text: str) -> tuple[int, dict[str, Any]]:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return status, {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: 0000 Correlation ID: 0000 Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
    }


class _Handler(BaseHTTPRequestHandler):
    owner: TokenEndpoints

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        if url.path.endswith("/v2.0/.well-known/openid-configuration") and parts[0] == self.owner.tenant:
            self._json(200, self.owner._openid_configuration(parts[0]))
        elif url.path == "/introspect":
            bearer = self.headers.get("Authorization", "")
            answer = self.owner.introspect(bearer[7:] if bearer.startswith("Bearer ") else "")
            self._json(200 if answer["active"] else 401, answer)
        elif url.path == "/google/auth":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            self.send_response(302)
            self.send_header("Location", self.owner._google_authorize(query))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path.endswith("/.well-known/openid-configuration"):
            self._json(
                400, {"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found."}
            )
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            # RFC 6749 2.3.1: client credentials in HTTP Basic (requests-oauthlib's default).
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            form.setdefault("client_id", unquote(client_id))
            form.setdefault("client_secret", unquote(secret))
        path = urlparse(self.path).path
        with self.owner._lock:
            self.owner.requests.append((path, form))
        tenant = self.owner.tenant
        if path == f"/{tenant}/oauth2/v2.0/token":
            self._json(*self.owner._microsoft_token(form))
        elif path == f"/{tenant}/oauth2/v2.0/devicecode":
            self._json(*self.owner._device_code(form))
        elif path == "/introspect":
            self._json(200, self.owner.introspect(form.get("token", "")))
        elif path == "/google/token":
            self._json(*self.owner._google_token(form))
        else:
            self._json(404, {"error": "not_found"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)
