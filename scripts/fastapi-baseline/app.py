"""The comparison stack for the login service's /auth/me: FastAPI + PyJWT,
one uvicorn worker, as the project's Python seed served it. It verifies the
login service's EdDSA access tokens against the service's published JWKS
(fetched once at start), checks issuer, audience and `typ`, then asks a
SQLite denylist whether the token's `jti` was revoked, and answers the
claims as JSON. Started by scripts/loopback.sh when FASTAPI_BASELINE=1.

Environment: JWKS_URL, ISSUER, AUDIENCE, DENYLIST_DB (a file path).
"""

import json
import os
import sqlite3
import urllib.request

import jwt
from fastapi import FastAPI, Header, HTTPException

ISSUER = os.environ["ISSUER"]
AUDIENCE = os.environ["AUDIENCE"]

with urllib.request.urlopen(os.environ["JWKS_URL"]) as response:
    KEYS = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in json.load(response)["keys"]}

DB = sqlite3.connect(os.environ["DENYLIST_DB"], check_same_thread=False)
DB.execute("CREATE TABLE IF NOT EXISTS denylist (jti TEXT PRIMARY KEY, expires_at INTEGER)")
DB.commit()

app = FastAPI()

UNAUTHORIZED = HTTPException(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@app.get("/auth/me")
async def me(authorization: str | None = Header(default=None)):
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})
    token = authorization[len("Bearer "):]
    try:
        header = jwt.get_unverified_header(token)
        key = KEYS[header["kid"]]
        if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            raise UNAUTHORIZED
        claims = jwt.decode(
            token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "jti"]},
        )
    except (jwt.PyJWTError, KeyError):
        raise UNAUTHORIZED
    if DB.execute("SELECT 1 FROM denylist WHERE jti = ?", (claims["jti"],)).fetchone():
        raise UNAUTHORIZED
    return claims


@app.get("/open")
async def open_route():
    return {"ok": True}
