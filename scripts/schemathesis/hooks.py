"""Schemathesis hooks for tessera's API fuzzing (run by scripts/fuzz-api).

Every generated request is sent as a signed-in admin (on the Supabase admin API, with
the server's service_role key). The fuzzer calls logout,
logout-all, password and email changes, demotion, deactivation and deletion with
that very account, so the token is fetched afresh for each request: a sign-in as the
admin, checked against an admin route. When that fails, the admin is put back as it
was first seen (email, password hash, role, active, not deleted, MFA off)
straight in the SQLite database, so that the fuzzer keeps one identity across a
scenario (a factor it created is still the same user's when it uses it). After a hard
delete it comes back as a new account (new id, same email and password): what was
deleted stays deleted.
"""

import os
import sqlite3
import uuid

import requests
import schemathesis

BASE = os.environ["TESSERA_FUZZ_URL"]
DATABASE = os.environ["TESSERA_FUZZ_DB"]
EMAIL = os.environ["FIRST_ADMIN_EMAIL"]
PASSWORD = os.environ["FIRST_ADMIN_PASSWORD"]
# `tessera keys supabase`'s service_role key for this server (scripts/fuzz-api).
SERVICE_KEY = os.environ["TESSERA_FUZZ_SERVICE_KEY"]
SNAPSHOT = {}


LAST_FAILURE = [""]


def _sign_in():
    res = requests.post(f"{BASE}/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30)
    token = res.json().get("access_token") if res.status_code == 200 else None
    if not token:
        LAST_FAILURE[0] = f"sign-in answered {res.status_code} {res.text[:300]}"
        return None
    check = requests.get(
        f"{BASE}/v1/admin/users?limit=1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    if check.status_code != 200:
        LAST_FAILURE[0] = f"the admin check answered {check.status_code} {check.text[:300]}"
        return None
    return token


def _restore_admin():
    """Puts the admin back as first seen; inserts it again after a hard delete."""
    with sqlite3.connect(DATABASE, timeout=30) as db:
        # Another account may have taken the address meanwhile: move it aside.
        db.execute(
            "UPDATE users SET email = lower(hex(id)) || '@moved-aside.invalid' WHERE email = ? AND id != ?",
            (SNAPSHOT["email"], SNAPSHOT["id"]),
        )
        restored = db.execute(
            "UPDATE users SET email = ?, password_hash = ?, role = 'admin', is_active = 1,"
            " deleted_at = NULL, mfa_enabled = 0, new_email = NULL WHERE id = ?",
            (SNAPSHOT["email"], SNAPSHOT["password_hash"], SNAPSHOT["id"]),
        ).rowcount
        if restored == 0:
            # Hard-deleted: a deleted account stays deleted, so the admin comes back
            # as a new account with the same email and password.
            SNAPSHOT["id"] = SNAPSHOT["row"]["id"] = SNAPSHOT["profile"]["user_id"] = _new_id()
            SNAPSHOT["profile"]["id"] = _new_id()
            for table, row in (("users", SNAPSHOT["row"]), ("profiles", SNAPSHOT["profile"])):
                columns = list(row)
                db.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                    [row[c] for c in columns],
                )


def _new_id():
    """A UUID in the form the database stores ids (16 bytes, as the original)."""
    fresh = uuid.uuid4()
    return fresh.bytes if isinstance(SNAPSHOT["row"]["id"], bytes) else str(fresh)


@schemathesis.auth(refresh_interval=None)
class Admin:
    def get(self, case, ctx):
        if not SNAPSHOT:
            with sqlite3.connect(DATABASE, timeout=30) as db:
                db.row_factory = sqlite3.Row
                row = db.execute("SELECT * FROM users WHERE email = ?", (EMAIL,)).fetchone()
                profile = db.execute("SELECT * FROM profiles WHERE user_id = ?", (row["id"],)).fetchone()
            SNAPSHOT.update(
                id=row["id"], email=row["email"], password_hash=row["password_hash"], row=dict(row), profile=dict(profile)
            )
        token = _sign_in()
        if token is None:
            _restore_admin()
            token = _sign_in()
        if token is None:
            raise RuntimeError(f"cannot sign in as the admin: {LAST_FAILURE[0]}")
        return token

    def set(self, case, data, ctx):
        # The Supabase admin API takes the project's service_role key, not a user's token.
        path = getattr(case, "path", "") or case.operation.path
        if path.startswith("/auth/v1/admin") or path == "/auth/v1/invite":
            data = SERVICE_KEY
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
