"""The App's routes of the sandbox GitHub: the App itself, installation tokens (and the checks of app JWTs
and tokens the server's dispatch applies), hook deliveries and redelivery, manifest conversion, a
repository's installation, the repository and collaborator permissions."""

from __future__ import annotations

import re
import secrets
import string
import time
from typing import Any

import jwt
from aiohttp import web

from ..github_state import ApiError, invalid, iso
from .handlers import REPO, Handlers, R, Route


class AppRoutes(Handlers):
    """App-JWT and installation-token authentication, and the App's own endpoints."""

    # set by SandboxGitHub.__init__
    app_public_key_pem: str | bytes | None
    token_ttl: float
    tokens_issued: int
    _tokens: dict[str, tuple[int, float]]  # token -> (installation id, expiry)

    def app_routes(self) -> list[Route]:
        inst, t = "{installation_id:\\d+}", "token"
        return [
            ("GET", "/app", lambda rq: self.app_info, "jwt"),
            ("POST", f"/app/installations/{inst}/access_tokens", self.h_token, "jwt"),
            ("GET", "/app/hook/deliveries", self.h_deliveries, "jwt"),
            ("POST", "/app/hook/deliveries/{delivery_id:\\d+}/attempts", self.h_redeliver, "jwt"),
            ("POST", "/app-manifests/{code}/conversions", self.h_manifest, None),
            ("GET", f"{R}/installation", self.h_repo_installation, "jwt"),
            ("GET", R, lambda rq: self.repo_json(rq[REPO]), t),
            ("GET", f"{R}/collaborators/{{username}}/permission",
             lambda rq: self.permission_json(rq[REPO], rq.match_info["username"]), t),
        ]

    def mint_token(self, installation_id: int, ttl: float | None = None) -> str:
        """An installation token without the JWT dance (for the replay CLI); ``tokens_issued`` only counts
        tokens created through the API."""
        token = "ghs_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
        self._tokens[token] = (installation_id, time.time() + (self.token_ttl if ttl is None else ttl))
        return token

    def _check_jwt(self, token: str | None) -> None:
        """Validate an app JWT as GitHub does: RS256, iss, exp in the future, iat not ahead, <= ~10 min life."""
        bad = ApiError(401, "A JSON web token could not be decoded")
        key = self.app_public_key_pem
        try:
            if not token or jwt.get_unverified_header(token).get("alg") != "RS256":
                raise bad
            # no key: the signature is not checked, and PyJWT ignores the key
            claims = jwt.decode(token, key if key is not None else "", algorithms=["RS256"], options={
                "verify_signature": key is not None, "verify_exp": False, "verify_iat": False,
                "verify_nbf": False, "verify_iss": False, "verify_aud": False})
        except jwt.PyJWTError:
            raise bad from None
        now, iat, exp = time.time(), claims.get("iat"), claims.get("exp")
        if str(claims.get("iss")) != str(self.app_id):
            raise ApiError(401, "'Issuer' claim ('iss') must be an Integer matching the app id")
        if not isinstance(exp, (int, float)) or exp <= now:
            raise ApiError(401, "'Expiration time' claim ('exp') must be a numeric value representing the future "
                                "time at which the assertion expires")
        if not isinstance(iat, (int, float)) or iat > now + 60 or exp - iat > 660:
            raise ApiError(401, "'Issued at' claim ('iat') must be an Integer representing the time that the "
                                "assertion was issued, at most 10 minutes before 'exp'")

    def _check_token(self, cred: str) -> int:
        if not cred:
            raise ApiError(401, "Requires authentication")
        if (rec := self._tokens.get(cred)) is None or rec[1] <= time.time():
            raise ApiError(401, "Bad credentials")
        return rec[0]

    def h_token(self, rq: web.Request) -> Any:
        inst = self._get(self._installations, self._num(rq, "installation_id"))
        token = self.mint_token(inst["id"])
        self.tokens_issued += 1
        return {"token": token, "expires_at": iso(self._tokens[token][1]), "permissions": inst["permissions"],
                "repository_selection": "all"}, 201

    def h_repo_installation(self, rq: web.Request) -> Any:
        repo = self._get(self._repos, f"{rq.match_info['owner']}/{rq.match_info['repo']}".lower())
        return self._must(next((i for i in self._installations.values() if self._owns(i["id"], repo)), None))

    def h_deliveries(self, rq: web.Request) -> Any:
        """Newest first, paginated by an opaque ``cursor`` in the Link header, as GitHub does here."""
        items = sorted(self._deliveries.values(), key=lambda d: d["id"], reverse=True)
        per = min(max(self._qint(rq, "per_page", 30), 1), 100)
        if cursor := rq.query.get("cursor"):
            if not (m := re.fullmatch(r"v1_(\d+)", cursor)):
                raise invalid("Query", "cursor", "invalid")
            items = [d for d in items if d["id"] <= int(m[1])]
        more = len(items) > per and rq.url.update_query(per_page=per, cursor=f"v1_{items[per]['id']}")
        return self._json(rq, items[:per], headers={"Link": f'<{more}>; rel="next"'} if more else None)

    def h_redeliver(self, rq: web.Request) -> Any:
        d = self._get(self._deliveries, self._num(rq, "delivery_id"))
        new = self.add_hook_delivery(event=d["event"], action=d["action"], guid=d["guid"], redelivery=True,
                                     installation_id=d["installation_id"], repository_id=d["repository_id"])
        self._write("redelivery", None, None, {"delivery_id": d["id"], "guid": d["guid"], "new_id": new["id"]})
        return {}, 202

    def h_manifest(self, rq: web.Request) -> Any:
        app = self._get(self._manifests, rq.match_info["code"])
        del self._manifests[rq.match_info["code"]]  # codes are single-use
        if app["pem"] is None:
            from cryptography.hazmat.primitives import serialization as ser
            from cryptography.hazmat.primitives.asymmetric import rsa
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            app["pem"] = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL,
                                           ser.NoEncryption()).decode()
            if app["id"] == self.app_id:
                self.app_public_key_pem = key.public_key().public_bytes(ser.Encoding.PEM,
                                                                        ser.PublicFormat.SubjectPublicKeyInfo)
        self._write("manifest_conversion", None, None, {"code": rq.match_info["code"], "id": app["id"]})
        return app, 201
