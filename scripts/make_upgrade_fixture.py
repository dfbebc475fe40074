#!/usr/bin/env python3
"""Write the upgrade fixture: what a given tessera build stored, for the test that reads it
with the current build (crates/tessera/tests/it/upgrade.rs).

Usage:
    python3 scripts/make_upgrade_fixture.py BINARY OUT_DIR

BINARY is a release build of the version whose stored formats must keep working (the
fixture in the repository was written by the build of commit b394110, before issue 27's
dependency upgrade). It starts that binary on a fresh SQLite file in OUT_DIR with fixed
keys (an RS256 signing key from tests/fixtures, a JWT secret, a refresh-token key, an MFA
key and a PII key ring), and through its HTTP API:
  - signs up a user (Argon2id with the default parameters), enrols and activates a TOTP
    factor, signs in with the password and the code: a session, its sealed refresh token
    and its RS256 access token (valid ten years, so the test can present it);
  - signs up a second user whose password hash is then set to a bcrypt hash made by the
    Python bcrypt package (tests/fixtures/legacy_hashes.json);
  - reads the JWKS.
Then it stops the server, folds the WAL into the database file, and writes OUT_DIR/
tessera.db and OUT_DIR/fixture.json (the settings, passwords, TOTP secret, tokens and
JWKS the test needs). Everything in it is test data.
"""

import base64
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "crates", "tessera", "tests", "fixtures")

SETTINGS = {
    "ENVIRONMENT": "development",
    "HOST": "127.0.0.1",
    "JWT_ALGORITHM": "RS256",
    "JWT_PRIVATE_KEY_FILE": os.path.join(FIXTURES, "jwt-rsa-a.pem"),
    "JWT_SECRET_KEY": "upgrade-fixture-jwt-secret-0123456789abcdef",
    "REFRESH_TOKEN_SECRET": "upgrade-fixture-refresh-secret-0123456789abcdef",
    "MFA_ENCRYPTION_KEY": "mfa1:" + base64.b64encode(b"upgrade-fixture-mfa-key-32-bytes").decode(),
    "PII_ENCRYPTION_KEY": "pii1:" + base64.b64encode(b"upgrade-fixture-pii-key-32-bytes").decode(),
    "ACCESS_TOKEN_EXPIRE_MINUTES": str(10 * 365 * 24 * 60),
    "REFRESH_TOKEN_EXPIRE_DAYS": str(10 * 365),
    "RATE_LIMIT_ENABLED": "false",
    "MAIL_TRANSPORT": "log",
    "LOG_LEVEL": "warn",
}
PASSWORD = "Upgrade!Fixture-Passw0rd"


def totp(secret_b32: str, at: float) -> str:
    """RFC 6238: SHA-1, 30 s, 6 digits."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def call(base: str, method: str, path: str, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as res:
            text = res.read().decode()
            call.cookies = [v for k, v in res.headers.items() if k.lower() == "set-cookie"]
            return res.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "null")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    db = os.path.join(out, "tessera.db")
    for suffix in ("", "-wal", "-shm", "-tessera"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    env = dict(SETTINGS, PORT="0", DATABASE_URL=f"sqlite://{db}", PATH=os.environ.get("PATH", ""))
    server = subprocess.Popen([binary, "serve"], env=env, cwd=out, stdout=subprocess.PIPE, text=True)
    base = None
    for line in server.stdout:
        if line.startswith("tessera listening on "):
            base = line.split("tessera listening on ", 1)[1].strip()
            break
    if base is None:
        sys.exit("the server did not start")
    try:
        email = "upgrade.user@example.com"
        status, user = call(base, "POST", "/v1/users", {"email": email, "password": PASSWORD, "full_name": "Up Grade"})
        assert status == 201, (status, user)
        status, login = call(base, "POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
        assert status == 200, (status, login)
        status, factor = call(base, "POST", "/v1/auth/mfa/totp", {"name": "Fixture"}, login["access_token"])
        assert status == 201, (status, factor)
        secret = factor["secret"]
        code = totp(secret, time.time())
        status, active = call(base, "POST", f"/v1/auth/mfa/totp/{factor['id']}/activate", {"code": code},
                              login["access_token"])
        assert status == 200, (status, active)
        # A sign-in with both factors: the session the test refreshes (a code of the next
        # step, since the activation used this one).
        status, first = call(base, "POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
        assert status == 200 and first.get("mfa_required"), (status, first)
        time.sleep(30 - time.time() % 30 + 1)
        status, signed_in = call(base, "POST", "/v1/auth/mfa/verify",
                                 {"mfa_token": first["mfa_token"], "code": totp(secret, time.time())})
        assert status == 200, (status, signed_in)
        refresh_token = next(c.split(";")[0].split("=", 1)[1] for c in call.cookies if c.startswith("refresh_token="))
        legacy = next(h for h in json.load(open(os.path.join(FIXTURES, "legacy_hashes.json")))
                      if h["scheme"] == "bcrypt-2b")
        status, other = call(base, "POST", "/v1/users", {"email": "bcrypt.user@example.com", "password": PASSWORD})
        assert status == 201, (status, other)
        status, jwks = call(base, "GET", "/.well-known/jwks.json")
        assert status == 200, (status, jwks)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    conn = sqlite3.connect(db)
    # SQLite keeps a uuid as its 16 bytes.
    uid = bytes.fromhex(other["id"].replace("-", ""))
    changed = conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (legacy["hash"], uid)).rowcount
    assert changed == 1, changed
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("VACUUM")
    conn.close()
    for suffix in ("-wal", "-shm", "-tessera"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    fixture = {
        "written_by": os.environ.get("FIXTURE_WRITTEN_BY", binary),
        "settings": {k: v for k, v in SETTINGS.items() if k not in ("LOG_LEVEL", "HOST", "JWT_PRIVATE_KEY_FILE")},
        "private_key_fixture": "jwt-rsa-a.pem",
        "user": {"id": user["id"], "email": email, "password": PASSWORD, "totp_secret": secret},
        "bcrypt_user": {"id": other["id"], "email": "bcrypt.user@example.com", "password": legacy["password"]},
        "access_token": signed_in["access_token"],
        "refresh_token": refresh_token,
        "jwks": jwks,
    }
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(fixture, f, indent=2)
        f.write("\n")
    print(f"wrote {db} and {os.path.join(out, 'fixture.json')}")


if __name__ == "__main__":
    main()
