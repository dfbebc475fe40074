#!/usr/bin/env python3
"""Generate the `tessera import` test fixtures: export files of five other auth systems.

Usage:
    python3 scripts/import-fixtures.py [OUTDIR]
    (OUTDIR defaults to crates/tessera/tests/fixtures/import next to this script's repo)

What it writes (all small, one shared population, see OUTDIR/README.md):

  supabase/users.csv         `\\copy (select * from auth.users) to 'users.csv' csv header`
  supabase/users.json        `psql -At -c 'select json_agg(u) from auth.users u'`
  supabase/identities.csv    `\\copy (select * from auth.identities) ... csv header`
  supabase/mfa_factors.csv   `\\copy (select * from auth.mfa_factors) ... csv header`
  supabase/auth_schema.sql   DDL of auth.users / auth.identities / auth.mfa_factors with
                             GoTrue's column names, order and types (read from the
                             supabase/auth migrations), then INSERTs of the same rows
  auth0/users.ndjson         Auth0 bulk user export job (format json = one object per line)
  auth0/hashes.ndjson        Auth0's password-hash export (MongoDB extended JSON per line)
  firebase/users.json        `firebase auth:export users.json --format=JSON`, byte layout as
                             firebase-tools' accountExporter writes it
  firebase/hash_config.txt   the "Password hash parameters" block of the Firebase console
  firebase/vector.json       firebase/scrypt's published test vector (checked here first)
  keycloak/realm-export.json `kc.sh export --realm acme --users realm_file`, Jackson layout
  csv/users.csv              tessera's generic CSV import format
  README.md                  per source: each row's address, id, password, expected outcome

Which independent implementation made each hash (none of it is tessera's Rust code):

  bcrypt ($2a$ Supabase, $2b$ Auth0 / CSV, $2y$ CSV)   pyca `bcrypt` (bcrypt.hashpw with a fixed salt)
  argon2id / argon2i PHC strings (Supabase, CSV)       `argon2-cffi` argon2.low_level.hash_secret
  Keycloak argon2 (raw hash + salt)                    `argon2-cffi` argon2.low_level.hash_secret_raw
  Keycloak pbkdf2 / pbkdf2-sha256 / pbkdf2-sha512      Python's hashlib.pbkdf2_hmac (OpenSSL)
  Firebase modified scrypt                             hashlib.scrypt (OpenSSL) + `cryptography`
                                                       AES-256-CTR; checked against firebase/scrypt's
                                                       published vector before anything is written
  md5-crypt ($1$, the "unreadable" legacy hash)        a small pure-Python md5-crypt below, checked
                                                       against the C library's crypt(3) when the
                                                       `crypt` module is available

Everything is deterministic: salts, ids, TOTP secrets and the Firebase signer key come from
SHA-512 of fixed labels, so a rerun rewrites identical files. bcrypt/argon2 hashes are verified
with the library that made them before the files are written.

The Supabase renderings (COPY CSV quoting, jsonb key order, timestamp text, json_agg layout) are
done here in Python; when this script was written they were checked byte for byte against
PostgreSQL 15's own `\\copy ... csv header` and `psql -At ... json_agg` output after loading
auth_schema.sql, and auth_schema.sql's columns/defaults/constraints against a database built by
running supabase/auth's migrations. Redo that check if you change the Supabase rows.

Needs the Python packages bcrypt, argon2-cffi and cryptography. If the running interpreter
lacks them, the script makes a venv outside the repository ($TESSERA_FIXTURE_VENV, default
/tmp/fixture-venv), pip-installs them there and runs itself again from that venv.
"""

import base64
import csv
import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
import uuid

VENV = os.environ.get("TESSERA_FIXTURE_VENV", "/tmp/fixture-venv")
PACKAGES = ["bcrypt", "argon2-cffi", "cryptography"]


def _reexec_in_venv() -> None:
    if os.environ.get("_TESSERA_IN_FIXTURE_VENV"):
        raise SystemExit(f"{', '.join(PACKAGES)} still missing in {VENV}")
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"creating venv {VENV} ({', '.join(PACKAGES)})", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    subprocess.check_call([py, "-m", "pip", "install", "-q", *PACKAGES])
    os.environ["_TESSERA_IN_FIXTURE_VENV"] = "1"
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


try:
    import bcrypt
    from argon2 import low_level as argon2_ll
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:
    _reexec_in_venv()


# ---------------------------------------------------------------------------
# deterministic material


def det(label: str, n: int) -> bytes:
    """n bytes derived from a fixed label (SHA-512 in counter mode)."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha512(f"tessera-import-fixture/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


def det_uuid(label: str) -> str:
    """A version-4-shaped UUID derived from a label (what GoTrue/Keycloak would have made at random)."""
    b = bytearray(det("uuid/" + label, 16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


def det_alnum(label: str, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[x % len(alphabet)] for x in det("alnum/" + label, n))


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def b32_nopad(b: bytes) -> str:
    return base64.b32encode(b).decode().rstrip("=")


def ts(s: str) -> dt.datetime:
    """'2024-03-01 10:00:00.123456' (UTC) -> aware datetime."""
    return dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc)


def ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def iso_z_ms(t: dt.datetime) -> str:
    """2024-03-12T20:54:23.456Z (JavaScript Date.toISOString, as Auth0 writes dates)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------
# hashes


BCRYPT_B64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
STD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def bcrypt_salt(label: str) -> bytes:
    """22-char bcrypt salt from 16 fixed bytes (bcrypt's own base64 alphabet)."""
    std = base64.b64encode(det("bcrypt/" + label, 16)).decode()[:22]
    return std.translate(str.maketrans(STD_B64, BCRYPT_B64)).encode()


def make_bcrypt(password: str, label: str, prefix: str = "2b", cost: int = 10) -> str:
    setting = f"${prefix}${cost:02d}$".encode() + bcrypt_salt(label)
    h = bcrypt.hashpw(password.encode(), setting)
    assert bcrypt.checkpw(password.encode(), h)
    assert h.startswith(f"${prefix}$".encode())
    return h.decode()


def make_argon2_phc(password: str, label: str, type_: str, t: int, m: int, p: int) -> str:
    kind = {"id": argon2_ll.Type.ID, "i": argon2_ll.Type.I}[type_]
    h = argon2_ll.hash_secret(
        password.encode(), det("argon2/" + label, 16),
        time_cost=t, memory_cost=m, parallelism=p, hash_len=32, type=kind,
    )
    assert argon2_ll.verify_secret(h, password.encode(), kind)
    return h.decode()


def make_argon2_raw(password: str, salt: bytes, t: int, m: int, p: int, hash_len: int) -> bytes:
    raw = argon2_ll.hash_secret_raw(
        password.encode(), salt, time_cost=t, memory_cost=m, parallelism=p,
        hash_len=hash_len, type=argon2_ll.Type.ID, version=19,
    )
    # cross-check: the PHC form of the same computation verifies
    phc = argon2_ll.hash_secret(
        password.encode(), salt, time_cost=t, memory_cost=m, parallelism=p,
        hash_len=hash_len, type=argon2_ll.Type.ID, version=19,
    )
    assert argon2_ll.verify_secret(phc, password.encode(), argon2_ll.Type.ID)
    assert phc.decode().rsplit("$", 1)[1] == base64.b64encode(raw).decode().rstrip("=")
    return raw


def make_pbkdf2(password: str, salt: bytes, digest: str, iterations: int, dklen: int) -> bytes:
    # known answer first (RFC 6070, PBKDF2-HMAC-SHA1, c = 4096)
    assert hashlib.pbkdf2_hmac("sha1", b"password", b"salt", 4096, 20).hex() == \
        "4b007901b765489abead49d926f721d065a429c1"
    return hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations, dklen)


def firebase_scrypt(password: bytes, salt: bytes, signer_key: bytes, separator: bytes,
                    rounds: int, mem_cost: int) -> bytes:
    key = hashlib.scrypt(password, salt=salt + separator, n=2 ** mem_cost, r=rounds, p=1,
                         dklen=32, maxmem=64 * 1024 * 1024)
    enc = Cipher(algorithms.AES(key), modes.CTR(b"\x00" * 16)).encryptor()
    return enc.update(signer_key) + enc.finalize()


# firebase/scrypt README's example (https://github.com/firebase/scrypt)
FIREBASE_VECTOR = {
    "signer_key": "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==",
    "salt_separator": "Bw==",
    "rounds": 8,
    "mem_cost": 14,
    "password": "user1password",
    "salt": "42xEC+ixf3L2lw==",
    "hash": "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==",
}


def check_firebase_vector() -> None:
    v = FIREBASE_VECTOR
    got = firebase_scrypt(
        v["password"].encode(), base64.b64decode(v["salt"]), base64.b64decode(v["signer_key"]),
        base64.b64decode(v["salt_separator"]), v["rounds"], v["mem_cost"],
    )
    if b64(got) != v["hash"]:
        raise SystemExit(
            "FIREBASE VECTOR MISMATCH: hashlib.scrypt + AES-CTR gave\n  " + b64(got)
            + "\nexpected\n  " + v["hash"]
        )


def md5_crypt(password: str, salt: str) -> str:
    """FreeBSD/glibc md5-crypt ($1$), the classic algorithm by Poul-Henning Kamp."""
    pw, sl, magic = password.encode(), salt.encode()[:8], b"$1$"
    alt = hashlib.md5(pw + sl + pw).digest()
    ctx = pw + magic + sl
    n = len(pw)
    while n > 0:
        ctx += alt[: min(16, n)]
        n -= 16
    i = len(pw)
    while i:
        ctx += b"\x00" if i & 1 else pw[:1]
        i >>= 1
    final = hashlib.md5(ctx).digest()
    for i in range(1000):
        c = pw if i & 1 else final
        if i % 3:
            c += sl
        if i % 7:
            c += pw
        c += final if i & 1 else pw
        final = hashlib.md5(c).digest()
    itoa = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    def to64(v: int, k: int) -> str:
        s = ""
        for _ in range(k):
            s += itoa[v & 0x3F]
            v >>= 6
        return s

    out = ""
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        out += to64((final[a] << 16) | (final[b] << 8) | final[c], 4)
    out += to64(final[11], 2)
    result = f"$1${sl.decode()}${out}"
    try:  # cross-check with crypt(3) where Python still ships the module
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # noqa: PLC0415

        assert crypt.crypt(password, f"$1${sl.decode()}$") == result
    except ImportError:
        pass
    return result


# ---------------------------------------------------------------------------
# the population


SOURCES = ["supabase", "auth0", "firebase", "keycloak", "csv"]

PEOPLE = {
    "alice": {"first": "Alice", "last": "Liddell", "verified": True},
    "bob": {"first": "Bob", "last": "Builder", "verified": True},
    "carol": {"first": "Carol", "last": "Singer", "verified": False},
    "dave": {"first": "Dave", "last": "Lister", "verified": True},
}
DAVE_PHONE = "+4915112345678"
DAVE_META = {"plan": "pro", "locale": "de-DE", "newsletter": True}


def pw(name: str, source: str) -> str:
    return f"{name.capitalize()}-{source}-Pw1!"


def addr(name: str, source: str) -> str:
    return f"{name}@{source}.example"


# README rows collected per source: dicts with address, id, password, hash, outcome, identities, totp
README: dict = {s: [] for s in SOURCES}
README_NOTES: dict = {s: [] for s in SOURCES}


def note_row(source, address, ident, password, scheme, outcome, identities="", totp=""):
    README[source].append(
        {"address": address, "id": ident, "password": password, "scheme": scheme,
         "outcome": outcome, "identities": identities, "totp": totp}
    )


# ---------------------------------------------------------------------------
# PostgreSQL text renderings


def pg_ts(t):
    """timestamptz as PostgreSQL prints it with TimeZone=UTC: 2024-03-01 10:00:00.123456+00."""
    if t is None:
        return None
    s = t.strftime("%Y-%m-%d %H:%M:%S")
    if t.microsecond:
        s += ("." + f"{t.microsecond:06d}").rstrip("0")
    return s + "+00"


def pg_ts_json(t):
    """timestamptz inside to_json/json_agg: 2024-03-01T10:00:00.123456+00:00."""
    if t is None:
        return None
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += ("." + f"{t.microsecond:06d}").rstrip("0")
    return s + "+00:00"


def jsonb_text(v) -> str:
    """jsonb's canonical text: keys ordered by (length, bytes), ', ' and ': ' separators."""
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(json.dumps(k, ensure_ascii=False) + ": " + jsonb_text(v[k]) for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(jsonb_text(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


class Jsonb:
    """Marks a value that lives in a jsonb column."""

    def __init__(self, v):
        self.v = v


class Raw:
    """A value printed verbatim in text/CSV (numbers, enums)."""

    def __init__(self, v):
        self.v = v


def pg_text(v):
    """A column value as COPY prints it (None stays None = NULL)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, dt.datetime):
        return pg_ts(v)
    if isinstance(v, Jsonb):
        return jsonb_text(v.v)
    if isinstance(v, Raw):
        return str(v.v)
    return str(v)


def copy_csv_field(s):
    """COPY ... CSV quoting: NULL is an unquoted empty field, '' is written as \"\"."""
    if s is None:
        return ""
    if s == "" or s == "\\." or any(c in s for c in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s


def copy_csv(columns, rows) -> str:
    out = [",".join(copy_csv_field(c) for c in columns)]
    for r in rows:
        out.append(",".join(copy_csv_field(pg_text(r[c])) for c in columns))
    return "\n".join(out) + "\n"


def pg_json_value(v) -> str:
    """A column value inside row_to_json / json_agg."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return json.dumps(pg_ts_json(v))
    if isinstance(v, Jsonb):
        return jsonb_text(v.v)
    if isinstance(v, Raw):
        return str(v.v)
    return json.dumps(v, ensure_ascii=False)


def pg_json_agg(columns, rows) -> str:
    objs = ["{" + ",".join(json.dumps(c) + ":" + pg_json_value(r[c]) for c in columns) + "}" for r in rows]
    return "[" + ", \n ".join(objs) + "]"


def sql_literal(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Raw):
        return str(v.v)
    return "'" + pg_text(v).replace("'", "''") + "'"


# ---------------------------------------------------------------------------
# Supabase (GoTrue auth schema)

# Column order of auth.users after all of supabase/auth's migrations (00_init_auth_schema, then
# ALTER TABLE ... ADD COLUMN in migration order; renames keep their position).
SUPABASE_USER_COLUMNS = [
    "instance_id", "id", "aud", "role", "email", "encrypted_password", "email_confirmed_at",
    "invited_at", "confirmation_token", "confirmation_sent_at", "recovery_token", "recovery_sent_at",
    "email_change_token_new", "email_change", "email_change_sent_at", "last_sign_in_at",
    "raw_app_meta_data", "raw_user_meta_data", "is_super_admin", "created_at", "updated_at",
    "phone", "phone_confirmed_at", "phone_change", "phone_change_token", "phone_change_sent_at",
    "confirmed_at", "email_change_token_current", "email_change_confirm_status", "banned_until",
    "reauthentication_token", "reauthentication_sent_at", "is_sso_user", "deleted_at", "is_anonymous",
]
SUPABASE_GENERATED = {"confirmed_at"}
SUPABASE_IDENTITY_COLUMNS = [
    "provider_id", "user_id", "identity_data", "provider", "last_sign_in_at", "created_at",
    "updated_at", "email", "id",
]
SUPABASE_IDENTITY_GENERATED = {"email"}
SUPABASE_FACTOR_COLUMNS = [
    "id", "user_id", "friendly_name", "factor_type", "status", "created_at", "updated_at", "secret",
    "phone", "last_challenged_at", "web_authn_credential", "web_authn_aaguid",
    "last_webauthn_challenge_data",
]

SUPABASE_DDL = """\
-- The three GoTrue (supabase/auth) tables tessera's Supabase importer reads, as they stand
-- after all of supabase/auth's migrations (column names, order, types, defaults, generated
-- columns, enums and the constraints that matter for the data). Made by
-- scripts/import-fixtures.py for a throwaway PostgreSQL (13+, for gen_random_uuid()).
-- The INSERTs after the DDL are the same rows as users.csv / identities.csv / mfa_factors.csv.

SET client_encoding = 'UTF8';
SET TimeZone = 'UTC';

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TYPE auth.factor_type AS ENUM ('totp', 'webauthn', 'phone');
CREATE TYPE auth.factor_status AS ENUM ('unverified', 'verified');

CREATE TABLE auth.users (
    instance_id uuid,
    id uuid NOT NULL,
    aud character varying(255),
    role character varying(255),
    email character varying(255),
    encrypted_password character varying(255),
    email_confirmed_at timestamp with time zone,
    invited_at timestamp with time zone,
    confirmation_token character varying(255),
    confirmation_sent_at timestamp with time zone,
    recovery_token character varying(255),
    recovery_sent_at timestamp with time zone,
    email_change_token_new character varying(255),
    email_change character varying(255),
    email_change_sent_at timestamp with time zone,
    last_sign_in_at timestamp with time zone,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_super_admin boolean,
    created_at timestamp with time zone,
    updated_at timestamp with time zone,
    phone text DEFAULT NULL::character varying,
    phone_confirmed_at timestamp with time zone,
    phone_change text DEFAULT ''::character varying,
    phone_change_token character varying(255) DEFAULT ''::character varying,
    phone_change_sent_at timestamp with time zone,
    confirmed_at timestamp with time zone GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
    email_change_token_current character varying(255) DEFAULT ''::character varying,
    email_change_confirm_status smallint DEFAULT 0,
    banned_until timestamp with time zone,
    reauthentication_token character varying(255) DEFAULT ''::character varying,
    reauthentication_sent_at timestamp with time zone,
    is_sso_user boolean DEFAULT false NOT NULL,
    deleted_at timestamp with time zone,
    is_anonymous boolean DEFAULT false NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_phone_key UNIQUE (phone),
    CONSTRAINT users_email_change_confirm_status_check CHECK (((email_change_confirm_status >= 0) AND (email_change_confirm_status <= 2)))
);
COMMENT ON TABLE auth.users IS 'Auth: Stores user login data within a secure schema.';
COMMENT ON COLUMN auth.users.is_sso_user IS 'Auth: Set this column to true when the account comes from SSO. These accounts can have duplicate emails.';
CREATE INDEX users_instance_id_idx ON auth.users USING btree (instance_id);
CREATE INDEX users_instance_id_email_idx ON auth.users USING btree (instance_id, lower((email)::text));
CREATE UNIQUE INDEX users_email_partial_key ON auth.users USING btree (email) WHERE (is_sso_user = false);
CREATE INDEX users_is_anonymous_idx ON auth.users USING btree (is_anonymous);
CREATE UNIQUE INDEX confirmation_token_idx ON auth.users USING btree (confirmation_token) WHERE ((confirmation_token)::text !~ '^[0-9 ]*$'::text);
CREATE UNIQUE INDEX recovery_token_idx ON auth.users USING btree (recovery_token) WHERE ((recovery_token)::text !~ '^[0-9 ]*$'::text);
CREATE UNIQUE INDEX email_change_token_current_idx ON auth.users USING btree (email_change_token_current) WHERE ((email_change_token_current)::text !~ '^[0-9 ]*$'::text);
CREATE UNIQUE INDEX email_change_token_new_idx ON auth.users USING btree (email_change_token_new) WHERE ((email_change_token_new)::text !~ '^[0-9 ]*$'::text);
CREATE UNIQUE INDEX reauthentication_token_idx ON auth.users USING btree (reauthentication_token) WHERE ((reauthentication_token)::text !~ '^[0-9 ]*$'::text);

CREATE TABLE auth.identities (
    provider_id text NOT NULL,
    user_id uuid NOT NULL,
    identity_data jsonb NOT NULL,
    provider text NOT NULL,
    last_sign_in_at timestamp with time zone,
    created_at timestamp with time zone,
    updated_at timestamp with time zone,
    email text GENERATED ALWAYS AS (lower((identity_data ->> 'email'::text))) STORED,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    CONSTRAINT identities_pkey PRIMARY KEY (id),
    CONSTRAINT identities_provider_id_provider_unique UNIQUE (provider_id, provider),
    CONSTRAINT identities_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE
);
COMMENT ON TABLE auth.identities IS 'Auth: Stores identities associated to a user.';
COMMENT ON COLUMN auth.identities.email IS 'Auth: Email is a generated column that references the optional email property in the identity_data';
CREATE INDEX identities_user_id_idx ON auth.identities USING btree (user_id);
CREATE INDEX identities_email_idx ON auth.identities USING btree (email text_pattern_ops);

CREATE TABLE auth.mfa_factors (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    friendly_name text,
    factor_type auth.factor_type NOT NULL,
    status auth.factor_status NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    secret text,
    phone text,
    last_challenged_at timestamp with time zone,
    web_authn_credential jsonb,
    web_authn_aaguid uuid,
    last_webauthn_challenge_data jsonb,
    CONSTRAINT mfa_factors_pkey PRIMARY KEY (id),
    CONSTRAINT mfa_factors_last_challenged_at_key UNIQUE (last_challenged_at),
    CONSTRAINT mfa_factors_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE
);
COMMENT ON TABLE auth.mfa_factors IS 'auth: stores metadata about factors';
COMMENT ON COLUMN auth.mfa_factors.last_webauthn_challenge_data IS 'Stores the latest WebAuthn challenge data including attestation/assertion for customer verification';
CREATE UNIQUE INDEX mfa_factors_user_friendly_name_unique ON auth.mfa_factors USING btree (friendly_name, user_id) WHERE (TRIM(BOTH FROM friendly_name) <> ''::text);
CREATE INDEX factor_id_created_at_idx ON auth.mfa_factors USING btree (user_id, created_at);
CREATE INDEX mfa_factors_user_id_idx ON auth.mfa_factors USING btree (user_id);
CREATE UNIQUE INDEX unique_phone_factor_per_user ON auth.mfa_factors USING btree (user_id, phone);
"""


def gotrue_obfuscate(user_id: str, value: str) -> str:
    """GoTrue's obfuscateValue: base64url-nopad(sha256(id.String() + value)) (internal/models/user.go)."""
    return base64.urlsafe_b64encode(hashlib.sha256((user_id + value).encode()).digest()).decode().rstrip("=")


def supabase():
    src = "supabase"
    instance = "00000000-0000-0000-0000-000000000000"
    users, identities, factors = [], [], []

    def user(key, email, enc_pw, created, *, confirmed=True, last_sign_in=None, app=None, meta=None,
             phone=None, banned_until=None, deleted_at=None, confirmation_token="",
             confirmation_sent_at=None, updated=None):
        uid = det_uuid(f"{src}/{key}")
        t = ts(created)
        confirmed_at = t + dt.timedelta(minutes=3, microseconds=123457) if confirmed else None
        row = {
            "instance_id": instance, "id": uid, "aud": "authenticated", "role": "authenticated",
            "email": email, "encrypted_password": enc_pw, "email_confirmed_at": confirmed_at,
            "invited_at": None, "confirmation_token": confirmation_token,
            "confirmation_sent_at": confirmation_sent_at if confirmation_sent_at else (t + dt.timedelta(seconds=1, microseconds=5012) if email else None),
            "recovery_token": "", "recovery_sent_at": None, "email_change_token_new": "",
            "email_change": "", "email_change_sent_at": None, "last_sign_in_at": last_sign_in,
            "raw_app_meta_data": Jsonb(app if app is not None else {"provider": "email", "providers": ["email"]}),
            "raw_user_meta_data": Jsonb(meta if meta is not None else {}),
            "is_super_admin": None, "created_at": t,
            "updated_at": updated or (last_sign_in or confirmed_at or t),
            "phone": phone, "phone_confirmed_at": None, "phone_change": "", "phone_change_token": "",
            "phone_change_sent_at": None, "email_change_token_current": "",
            "email_change_confirm_status": Raw(0), "banned_until": banned_until,
            "reauthentication_token": "", "reauthentication_sent_at": None, "is_sso_user": False,
            "deleted_at": deleted_at, "is_anonymous": False,
        }
        row["confirmed_at"] = confirmed_at  # LEAST(email_confirmed_at, phone_confirmed_at), phone never confirmed here
        users.append(row)
        return row

    def email_identity(u, verified, extra=None, created=None):
        data = {"sub": u["id"], "email": u["email"].lower(), "email_verified": verified, "phone_verified": False}
        data.update(extra or {})
        t = created or u["created_at"]
        identities.append({
            "provider_id": u["id"], "user_id": u["id"], "identity_data": Jsonb(data), "provider": "email",
            "last_sign_in_at": t, "created_at": t, "updated_at": u["email_confirmed_at"] or t,
            "email": data["email"].lower(), "id": det_uuid(f"{src}/identity/email/{u['id']}"),
        })
        return data

    hashes = {}
    # alice, bob, carol: bcrypt $2a$10$ (what Go's x/crypto/bcrypt writes); dave: an argon2id PHC
    # hash imported into Supabase through the admin API (GoTrue accepts $argon2i/$argon2id/$fbscrypt).
    for name in PEOPLE:
        password = pw(name, src)
        if name == "dave":
            hashes[name] = (make_argon2_phc(password, f"{src}/{name}", "id", t=2, m=19456, p=1), "argon2id (PHC)")
        else:
            hashes[name] = (make_bcrypt(password, f"{src}/{name}", "2a", 10), "bcrypt $2a$10$")

    created = {"alice": "2024-03-01 10:00:00.123456", "bob": "2024-03-01 10:05:12.654321",
               "carol": "2024-03-02 08:30:00.5", "dave": "2024-03-03 17:45:09.000042"}

    # alice: verified, TOTP factor
    alice = user("alice", addr("alice", src), hashes["alice"][0], created["alice"],
                 last_sign_in=ts("2024-03-20 07:12:44.314159"),
                 meta={"sub": None, "email": addr("alice", src), "email_verified": True, "phone_verified": False})
    alice["raw_user_meta_data"].v["sub"] = alice["id"]
    email_identity(alice, True)
    totp_secret = b32_nopad(det(f"{src}/alice/totp", 20))
    factor_id = det_uuid(f"{src}/alice/factor")
    factors.append({
        "id": factor_id, "user_id": alice["id"], "friendly_name": "Pixel 8", "factor_type": "totp",
        "status": "verified", "created_at": ts("2024-03-05 09:00:00.111111"),
        "updated_at": ts("2024-03-05 09:00:31.222222"), "secret": totp_secret, "phone": None,
        "last_challenged_at": ts("2024-03-20 07:12:50.271828"), "web_authn_credential": None,
        "web_authn_aaguid": None, "last_webauthn_challenge_data": None,
    })
    note_row(src, alice["email"], alice["id"], pw("alice", src), hashes["alice"][1], "imported",
             "email", f"{totp_secret} (factor {factor_id}, verified)")

    # bob: verified, Google identity linked
    bob = user("bob", addr("bob", src), hashes["bob"][0], created["bob"],
               last_sign_in=ts("2024-03-18 19:01:02.030405"),
               app={"provider": "email", "providers": ["email", "google"]},
               meta={"iss": "https://accounts.google.com", "sub": "google-bob-supabase", "name": "Bob Builder",
                     "email": addr("bob", src), "picture": "https://lh3.googleusercontent.com/a/bob-supabase",
                     "full_name": "Bob Builder", "avatar_url": "https://lh3.googleusercontent.com/a/bob-supabase",
                     "provider_id": "google-bob-supabase", "email_verified": True, "phone_verified": False})
    email_identity(bob, True)
    g_created = ts("2024-03-10 12:00:00.424242")
    gdata = {"iss": "https://accounts.google.com", "sub": "google-bob-supabase", "name": "Bob Builder",
             "email": addr("bob", src), "picture": "https://lh3.googleusercontent.com/a/bob-supabase",
             "full_name": "Bob Builder", "avatar_url": "https://lh3.googleusercontent.com/a/bob-supabase",
             "provider_id": "google-bob-supabase", "email_verified": True, "phone_verified": False}
    identities.append({
        "provider_id": "google-bob-supabase", "user_id": bob["id"], "identity_data": Jsonb(gdata),
        "provider": "google", "last_sign_in_at": ts("2024-03-18 19:01:02.030405"), "created_at": g_created,
        "updated_at": ts("2024-03-18 19:01:02.030405"), "email": addr("bob", src),
        "id": det_uuid(f"{src}/identity/google/{bob['id']}"),
    })
    note_row(src, bob["email"], bob["id"], pw("bob", src), hashes["bob"][1], "imported",
             "email; google `google-bob-supabase`")

    # carol: unverified (confirmation mail sent, token pending)
    carol_token = hashlib.sha224((addr("carol", src) + "482913").encode()).hexdigest()
    carol = user("carol", addr("carol", src), hashes["carol"][0], created["carol"], confirmed=False,
                 confirmation_token=carol_token,
                 meta={"sub": None, "email": addr("carol", src), "email_verified": False, "phone_verified": False})
    carol["raw_user_meta_data"].v["sub"] = carol["id"]
    email_identity(carol, False)
    note_row(src, carol["email"], carol["id"], pw("carol", src), hashes["carol"][1],
             "imported (email unverified)", "email")

    # dave: verified, full name, phone (GoTrue stores phones without the '+'), metadata
    dave_meta = {"sub": None, "email": addr("dave", src), "full_name": "Dave Lister",
                 "email_verified": True, "phone_verified": False, **DAVE_META}
    dave = user("dave", addr("dave", src), hashes["dave"][0], created["dave"],
                last_sign_in=ts("2024-03-21 22:10:00.999999"), meta=dave_meta,
                app={"provider": "email", "providers": ["email"], "role": "admin"},
                phone=DAVE_PHONE.lstrip("+"))
    dave["raw_user_meta_data"].v["sub"] = dave["id"]
    email_identity(dave, True, {"full_name": "Dave Lister", **DAVE_META})
    note_row(src, dave["email"], dave["id"], pw("dave", src), hashes["dave"][1],
             "imported (name Dave Lister, phone +4915112345678, metadata)", "email")

    # broken rows
    bad_pw = f"Bad-{src}-Pw1!"
    bad = user("bad-address", "not-an-address", make_bcrypt(bad_pw, f"{src}/bad", "2a"), "2024-03-04 11:11:11.111111",
               confirmed=False, confirmation_token=hashlib.sha224(b"not-an-address" + b"113355").hexdigest(),
               meta={"sub": None, "email": "not-an-address", "email_verified": False, "phone_verified": False})
    bad["raw_user_meta_data"].v["sub"] = bad["id"]
    email_identity(bad, False)
    note_row(src, "not-an-address", bad["id"], bad_pw, "bcrypt $2a$10$", "refused invalid_email", "email")

    old_pw = f"Old-{src}-Pw1!"
    old = user("oldhash", addr("oldhash", src), md5_crypt(old_pw, "abcdefgh"), "2024-03-04 12:00:00.000001",
               last_sign_in=None,
               meta={"sub": None, "email": addr("oldhash", src), "email_verified": True, "phone_verified": False})
    old["raw_user_meta_data"].v["sub"] = old["id"]
    email_identity(old, True)
    note_row(src, old["email"], old["id"], old_pw, "md5-crypt $1$ (unreadable)", "refused unknown_hash_format",
             "email")

    dup_pw = f"Alice2-{src}-Pw1!"
    dup_email = "ALICE@" + f"{src}.example"
    dup = user("alice-dup", dup_email, make_bcrypt(dup_pw, f"{src}/alice-dup", "2a"), "2024-03-06 14:00:00.777",
               meta={"sub": None, "email": dup_email, "email_verified": True, "phone_verified": False})
    dup["raw_user_meta_data"].v["sub"] = dup["id"]
    email_identity(dup, True)
    note_row(src, dup_email, dup["id"], dup_pw, "bcrypt $2a$10$", "refused duplicate (of alice)", "email")

    # soft-deleted user, exactly as GoTrue's User.SoftDeleteUser + SoftDeleteUserIdentities leave it:
    # email/phone/email_change/phone_change obfuscated, encrypted_password NULL, metadata emptied,
    # identity_data emptied and provider_id obfuscated.
    gone_email = addr("gone", src)
    gone_deleted = ts("2024-03-15 16:20:00.161803")
    gone = user("gone", gone_email, None, "2024-03-02 09:00:00.333333", last_sign_in=ts("2024-03-09 10:00:00.1"),
                meta={}, app={}, deleted_at=gone_deleted, updated=gone_deleted)
    gone["email"] = gotrue_obfuscate(gone["id"], gone_email)
    gone["phone"] = gotrue_obfuscate(gone["id"], "")[:15]
    gone["email_change"] = gotrue_obfuscate(gone["id"], "")
    gone["phone_change"] = gotrue_obfuscate(gone["id"], "")[:15]
    t = gone["created_at"]
    identities.append({
        "provider_id": gotrue_obfuscate(gone["id"], "email:" + gone["id"]), "user_id": gone["id"],
        "identity_data": Jsonb({}), "provider": "email", "last_sign_in_at": ts("2024-03-09 10:00:00.1"),
        "created_at": t, "updated_at": gone_deleted, "email": None,
        "id": det_uuid(f"{src}/identity/email/{gone['id']}"),
    })
    note_row(src, f"{gone['email']} (was {gone_email})", gone["id"], "(none: encrypted_password NULL)",
             "-", "skipped deleted_in_source", "email (emptied)")

    banned_pw = f"Banned-{src}-Pw1!"
    banned = user("banned", addr("banned", src), make_bcrypt(banned_pw, f"{src}/banned", "2a"),
                  "2024-03-02 13:37:00.1337", last_sign_in=ts("2024-03-08 08:08:08.080808"),
                  banned_until=ts("2124-02-14 09:30:00.246810"), updated=ts("2024-03-12 09:30:00.24681"),
                  meta={"sub": None, "email": addr("banned", src), "email_verified": True, "phone_verified": False})
    banned["raw_user_meta_data"].v["sub"] = banned["id"]
    email_identity(banned, True)
    note_row(src, banned["email"], banned["id"], banned_pw, "bcrypt $2a$10$",
             "imported inactive (banned_until 2124-02-14)", "email")

    return users, identities, factors


def write_supabase(out):
    users, identities, factors = supabase()
    d = os.path.join(out, "supabase")
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "users.csv"), copy_csv(SUPABASE_USER_COLUMNS, users))
    write(os.path.join(d, "users.json"), pg_json_agg(SUPABASE_USER_COLUMNS, users) + "\n")
    write(os.path.join(d, "identities.csv"), copy_csv(SUPABASE_IDENTITY_COLUMNS, identities))
    write(os.path.join(d, "mfa_factors.csv"), copy_csv(SUPABASE_FACTOR_COLUMNS, factors))

    def inserts(table, columns, generated, rows):
        cols = [c for c in columns if c not in generated]
        lines = []
        for r in rows:
            lines.append(f"INSERT INTO auth.{table} ({', '.join(cols)}) VALUES ("
                         + ", ".join(sql_literal(r[c]) for c in cols) + ");")
        return "\n".join(lines) + "\n"

    sql = SUPABASE_DDL + "\n"
    sql += inserts("users", SUPABASE_USER_COLUMNS, SUPABASE_GENERATED, users) + "\n"
    sql += inserts("identities", SUPABASE_IDENTITY_COLUMNS, SUPABASE_IDENTITY_GENERATED, identities) + "\n"
    sql += inserts("mfa_factors", SUPABASE_FACTOR_COLUMNS, set(), factors)
    write(os.path.join(d, "auth_schema.sql"), sql)


# ---------------------------------------------------------------------------
# Auth0


def auth0(out):
    src = "auth0"
    tenant = "acme-prod"
    conn = "Username-Password-Authentication"
    # ObjectIds: 4-byte timestamp 0x65f0c0ff (2024-03-12T20:54:23Z) + 8 bytes
    oids = {
        "alice": "65f0c0ffee1a2b3c4d5e0a11", "bob": "65f0c0ffee1a2b3c4d5e0b0b",
        "carol": "65f0c0ffee1a2b3c4d5e0ca1", "dave": "65f0c0ffee1a2b3c4d5e0da7",
        "bad-address": "65f0c0ffee1a2b3c4d5e0bad", "oldhash": "65f0c0ffee1a2b3c4d5e001d",
        "alice-dup": "65f0c0ffee1a2b3c4d5e0a12",
    }
    base = dt.datetime(2024, 3, 12, 20, 54, 23, 456000, tzinfo=dt.timezone.utc)
    users, hashes = [], []

    def add(key, email, verified, password_hash, scheme, password, outcome, *, name=None, given=None,
            family=None, extra_identities=(), user_metadata=None, app_metadata=None, offset_min=0,
            identities_note="auth0"):
        oid = oids[key]
        created = base + dt.timedelta(minutes=offset_min)
        updated = created + dt.timedelta(days=3, seconds=17, milliseconds=101)
        u = {"user_id": f"auth0|{oid}", "email": email, "email_verified": verified, "name": name or email}
        if given:
            u["given_name"] = given
        if family:
            u["family_name"] = family
        u["created_at"] = iso_z_ms(created)
        u["updated_at"] = iso_z_ms(updated)
        u["identities"] = [{"connection": conn, "provider": "auth0", "user_id": oid, "isSocial": False},
                           *extra_identities]
        u["user_metadata"] = user_metadata or {}
        u["app_metadata"] = app_metadata or {}
        u["blocked"] = False
        users.append(u)
        hashes.append({
            "_id": {"$oid": oid}, "email_verified": verified, "email": email, "passwordHash": password_hash,
            "password_set_date": {"$date": iso_z_ms(created)}, "tenant": tenant, "connection": conn,
            "_tmp_is_unique": True,
        })
        note_row(src, email, f"auth0|{oid}", password, scheme, outcome, identities_note)

    for i, name in enumerate(PEOPLE):
        p = PEOPLE[name]
        password = pw(name, src)
        h = make_bcrypt(password, f"{src}/{name}", "2b", 10)
        kw = {}
        note = "auth0"
        if name == "bob":
            kw["extra_identities"] = [{
                "profileData": {"email": addr("bob", src), "email_verified": True, "name": "Bob Builder",
                                "given_name": "Bob", "family_name": "Builder",
                                "picture": "https://lh3.googleusercontent.com/a/bob-auth0"},
                "provider": "google-oauth2", "user_id": "google-bob-auth0", "connection": "google-oauth2",
                "isSocial": True,
            }]
            note = "auth0; google-oauth2 `google-bob-auth0`"
        if name == "dave":
            kw.update(name="Dave Lister", given="Dave", family="Lister",
                      user_metadata={"phone": DAVE_PHONE, **DAVE_META}, app_metadata={"roles": ["admin"]})
        outcome = "imported" if p["verified"] else "imported (email unverified)"
        if name == "dave":
            outcome = "imported (name Dave Lister, metadata)"
        add(name, addr(name, src), p["verified"], h, "bcrypt $2b$10$", password, outcome,
            offset_min=i * 7, identities_note=note, **kw)

    bad_pw = f"Bad-{src}-Pw1!"
    add("bad-address", "not-an-address", False, make_bcrypt(bad_pw, f"{src}/bad", "2b"), "bcrypt $2b$10$",
        bad_pw, "refused invalid_email", offset_min=40)
    old_pw = f"Old-{src}-Pw1!"
    # not a format Auth0 (or tessera) knows: a legacy "$md5$salt$hex(md5(salt+password))" string
    old_hash = "$md5$k9Zq2LwX$" + hashlib.md5(b"k9Zq2LwX" + old_pw.encode()).hexdigest()
    add("oldhash", addr("oldhash", src), True, old_hash, "`$md5$` (unreadable)", old_pw,
        "refused unknown_hash_format", offset_min=45)
    dup_pw = f"Alice2-{src}-Pw1!"
    add("alice-dup", "ALICE@" + f"{src}.example", True, make_bcrypt(dup_pw, f"{src}/alice-dup", "2b"),
        "bcrypt $2b$10$", dup_pw, "refused duplicate (of alice)", offset_min=50)

    d = os.path.join(out, "auth0")
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "users.ndjson"), "".join(json.dumps(u, separators=(",", ":")) + "\n" for u in users))
    write(os.path.join(d, "hashes.ndjson"), "".join(json.dumps(h, separators=(",", ":")) + "\n" for h in hashes))
    README_NOTES[src].append(f"tenant `{tenant}`, connection `{conn}`; `$oid` in hashes.ndjson = user_id after `auth0|`.")


# ---------------------------------------------------------------------------
# Firebase


def firebase(out):
    src = "firebase"
    check_firebase_vector()
    signer_key = det("firebase/signer_key", 64)
    separator = base64.b64decode("Bw==")
    rounds, mem_cost = 8, 14

    def fb_hash(password, label):
        salt = det("firebase/salt/" + label, 10)
        h = firebase_scrypt(password.encode(), salt, signer_key, separator, rounds, mem_cost)
        assert h == firebase_scrypt(password.encode(), salt, signer_key, separator, rounds, mem_cost)
        return b64(h), b64(salt)

    users = []
    base = dt.datetime(2024, 3, 1, 9, 0, 0, 123000, tzinfo=dt.timezone.utc)

    def add(key, email, verified, password, outcome, *, display=None, photo=None, phone=None, providers=None,
            custom=None, salt_missing=False, offset_h=0, note="password"):
        local_id = det_alnum("firebase/localId/" + key, 28)
        created = base + dt.timedelta(hours=offset_h, milliseconds=offset_h * 37)
        last = created + dt.timedelta(days=5, milliseconds=4242)
        h, salt = fb_hash(password, key)
        u = {"localId": local_id, "email": email, "emailVerified": verified, "passwordHash": h}
        if not salt_missing:
            u["salt"] = salt
        if display:
            u["displayName"] = display
        if photo:
            u["photoUrl"] = photo
        u["lastSignedInAt"] = str(ms(last))
        u["createdAt"] = str(ms(created))
        if phone:
            u["phoneNumber"] = phone
        if custom:
            u["customAttributes"] = json.dumps(custom, separators=(",", ":"))
        u["providerUserInfo"] = providers or []
        users.append(u)
        note_row(src, email, local_id, password,
                 "firebase scrypt (no salt)" if salt_missing else "firebase scrypt", outcome, note)

    for i, name in enumerate(PEOPLE):
        p = PEOPLE[name]
        kw = {}
        note = "password"
        outcome = "imported" if p["verified"] else "imported (email unverified)"
        if name == "bob":
            kw["display"] = "Bob Builder"
            kw["photo"] = "https://lh3.googleusercontent.com/a/bob-firebase"
            kw["providers"] = [{"providerId": "google.com", "rawId": "google-bob-firebase",
                                "email": addr("bob", src), "displayName": "Bob Builder",
                                "photoUrl": "https://lh3.googleusercontent.com/a/bob-firebase"}]
            note = "password; google.com `google-bob-firebase`"
        if name == "dave":
            kw.update(display="Dave Lister", phone=DAVE_PHONE, custom={"role": "admin"})
            outcome = "imported (name Dave Lister, phone +4915112345678, customAttributes role=admin)"
        add(name, addr(name, src), p["verified"], pw(name, src), outcome, offset_h=i, note=note, **kw)

    add("bad-address", "not-an-address", False, f"Bad-{src}-Pw1!", "refused invalid_email", offset_h=10)
    add("oldhash", addr("oldhash", src), True, f"Old-{src}-Pw1!", "refused unknown_hash_format",
        salt_missing=True, offset_h=11)
    add("alice-dup", "ALICE@" + f"{src}.example", True, f"Alice2-{src}-Pw1!", "refused duplicate (of alice)",
        offset_h=12)

    # downloadAccount pages through accounts in localId order; keep the duplicate after alice
    users.sort(key=lambda u: u["localId"].encode())
    order = [u["email"] for u in users]
    assert order.index(addr("alice", src)) < order.index("ALICE@" + f"{src}.example")
    README[src].sort(key=lambda r: r["id"].encode())

    d = os.path.join(out, "firebase")
    os.makedirs(d, exist_ok=True)
    # firebase-tools: '{"users": [' + EOL, users as JSON.stringify(user, null, 2) joined by ',' + EOL, ']}'
    body = ",\n".join(json.dumps(u, indent=2, ensure_ascii=False) for u in users)
    write(os.path.join(d, "users.json"), '{"users": [\n' + body + "]}")
    write(os.path.join(d, "hash_config.txt"),
          "hash_config {\n"
          "  algorithm: SCRYPT,\n"
          f"  base64_signer_key: {b64(signer_key)},\n"
          "  base64_salt_separator: Bw==,\n"
          f"  rounds: {rounds},\n"
          f"  mem_cost: {mem_cost},\n"
          "}\n")
    write(os.path.join(d, "vector.json"), json.dumps(FIREBASE_VECTOR, indent=2) + "\n")
    README_NOTES[src].append(
        "`localId` is the id. Hash parameters in hash_config.txt (signer key = 64 fixed bytes, "
        "separator `Bw==`, rounds 8, mem_cost 14). vector.json is firebase/scrypt's published vector; "
        "the generator refuses to run unless hashlib.scrypt + AES-CTR reproduces it.")
    README_NOTES[src].append(
        "Users are in localId order, as the export pages through them. Password-only users have "
        "`providerUserInfo: []` (firebase-tools keeps only google.com/facebook.com/twitter.com/github.com "
        "entries). The oldhash row has a `passwordHash` but no `salt`; note that firebase-tools itself "
        "drops both `passwordHash` and `salt` for accounts not hashed with the project's scrypt.")


# ---------------------------------------------------------------------------
# Keycloak


def jackson(v, depth=0) -> str:
    """Jackson's DefaultPrettyPrinter (what Keycloak's export writes): 'key' : value, inline arrays."""
    pad = "  " * depth
    if isinstance(v, dict):
        if not v:
            return "{ }"
        items = [f'{pad}  {json.dumps(k, ensure_ascii=False)} : {jackson(x, depth + 1)}' for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, list):
        if not v:
            return "[ ]"
        return "[ " + ", ".join(jackson(x, depth) for x in v) + " ]"
    return json.dumps(v, ensure_ascii=False)


def compact(v) -> str:
    return json.dumps(v, separators=(",", ":"))


def keycloak(out):
    src = "keycloak"
    realm = "acme"
    users = []
    base = dt.datetime(2024, 2, 20, 8, 15, 0, 0, tzinfo=dt.timezone.utc)

    def pbkdf2_cred(password, label, algorithm, digest, iterations, created):
        salt = det(f"{src}/salt/{label}", 16)
        value = make_pbkdf2(password, salt, digest, iterations, 64)
        return {
            "id": det_uuid(f"{src}/cred/{label}"), "type": "password", "userLabel": "My password",
            "createdDate": ms(created),
            "secretData": compact({"value": b64(value), "salt": b64(salt), "additionalParameters": {}}),
            "credentialData": compact({"hashIterations": iterations, "algorithm": algorithm,
                                       "additionalParameters": {}}),
        }

    def argon2_cred(password, label, created):
        salt = det(f"{src}/salt/{label}", 16)
        value = make_argon2_raw(password, salt, t=5, m=7168, p=1, hash_len=32)
        return {
            "id": det_uuid(f"{src}/cred/{label}"), "type": "password", "userLabel": "My password",
            "createdDate": ms(created),
            "secretData": compact({"value": b64(value), "salt": b64(salt), "additionalParameters": {}}),
            # additionalParameters is a Java HashMap: this is its iteration order for these keys
            "credentialData": compact({"hashIterations": 5, "algorithm": "argon2", "additionalParameters": {
                "hashLength": ["32"], "memory": ["7168"], "parallelism": ["1"], "type": ["id"],
                "version": ["1.3"]}}),
        }

    def user(key, username, email, verified, creds, *, first=None, last=None, attrs=None, fed=None, totp=False,
             offset_h=0):
        uid = det_uuid(f"{src}/{key}")
        created = base + dt.timedelta(hours=offset_h, milliseconds=offset_h * 101 + 7)
        u = {"id": uid, "username": username}
        if first:
            u["firstName"] = first
        if last:
            u["lastName"] = last
        u["email"] = email
        u["emailVerified"] = verified
        if attrs:
            u["attributes"] = attrs
        u["createdTimestamp"] = ms(created)
        u["enabled"] = True
        u["totp"] = totp
        u["credentials"] = creds(created)
        u["disableableCredentialTypes"] = []
        u["requiredActions"] = [] if verified else ["VERIFY_EMAIL"]
        if fed:
            u["federatedIdentities"] = fed
        u["realmRoles"] = [f"default-roles-{realm}"]
        u["notBefore"] = 0
        u["groups"] = []
        users.append(u)
        return u

    algos = {"alice": ("pbkdf2-sha256", "sha256", 27500), "bob": ("pbkdf2", "sha1", 20000),
             "carol": ("pbkdf2-sha512", "sha512", 30000), "dave": ("argon2", None, None)}
    otp_value = det_alnum(f"{src}/alice/otp", 20)
    otp_b32 = base64.b32encode(otp_value.encode()).decode().rstrip("=")
    for i, name in enumerate(PEOPLE):
        p = PEOPLE[name]
        password = pw(name, src)
        algorithm, digest, iters = algos[name]

        def creds(created, name=name, password=password, algorithm=algorithm, digest=digest, iters=iters):
            c = [argon2_cred(password, name, created) if algorithm == "argon2"
                 else pbkdf2_cred(password, name, algorithm, digest, iters, created)]
            if name == "alice":
                c.append({
                    "id": det_uuid(f"{src}/cred/alice-otp"), "type": "otp", "userLabel": "Pixel 8",
                    "createdDate": ms(created + dt.timedelta(days=2, milliseconds=512)),
                    "secretData": compact({"value": otp_value}),
                    "credentialData": compact({"subType": "totp", "digits": 6, "counter": 0, "period": 30,
                                               "algorithm": "HmacSHA1"}),
                })
            return c

        kw = {}
        ids_note = "-"
        if name == "bob":
            kw["fed"] = [{"identityProvider": "google", "userId": "google-bob-keycloak",
                          "userName": addr("bob", src)}]
            ids_note = "google `google-bob-keycloak`"
        if name == "dave":
            kw["attrs"] = {"phone": [DAVE_PHONE], "plan": ["pro"], "locale": ["de-DE"]}
        u = user(name, name, addr(name, src), p["verified"], creds, first=p["first"], last=p["last"],
                 totp=(name == "alice"), offset_h=i, **kw)
        scheme = {"argon2": "argon2id m=7168 t=5 p=1 (32 bytes)"}.get(
            algorithm, f"{algorithm} i={iters} (64-byte key)")
        outcome = "imported" if p["verified"] else "imported (email unverified)"
        if name == "dave":
            outcome = "imported (name Dave Lister, phone +4915112345678, attributes)"
        note_row(src, u["email"], u["id"], password, scheme, outcome, ids_note,
                 f"{otp_b32} (value `{otp_value}`)" if name == "alice" else "")

    bad_pw = f"Bad-{src}-Pw1!"
    u = user("bad-address", "bad-address", "not-an-address", False,
             lambda c: [pbkdf2_cred(bad_pw, "bad", "pbkdf2-sha256", "sha256", 27500, c)], offset_h=10)
    note_row(src, "not-an-address", u["id"], bad_pw, "pbkdf2-sha256 i=27500", "refused invalid_email", "-")

    old_pw = f"Old-{src}-Pw1!"

    def md5_cred(created):
        salt = det(f"{src}/salt/oldhash", 16)
        return [{
            "id": det_uuid(f"{src}/cred/oldhash"), "type": "password", "userLabel": "My password",
            "createdDate": ms(created),
            "secretData": compact({"value": b64(hashlib.md5(salt + old_pw.encode()).digest()), "salt": b64(salt),
                                   "additionalParameters": {}}),
            "credentialData": compact({"hashIterations": 1, "algorithm": "md5", "additionalParameters": {}}),
        }]

    u = user("oldhash", "oldhash", addr("oldhash", src), True, md5_cred, offset_h=11)
    note_row(src, u["email"], u["id"], old_pw, "`md5` credential (unreadable)", "refused unknown_hash_format", "-")

    dup_pw = f"Alice2-{src}-Pw1!"
    u = user("alice-dup", "alice2", "ALICE@" + f"{src}.example", True,
             lambda c: [pbkdf2_cred(dup_pw, "alice-dup", "pbkdf2-sha256", "sha256", 27500, c)],
             first="Alice", last="Liddell", offset_h=12)
    note_row(src, u["email"], u["id"], dup_pw, "pbkdf2-sha256 i=27500", "refused duplicate (of alice)", "-")

    export = {
        "id": det_uuid(f"{src}/realm"), "realm": realm, "displayName": "ACME", "notBefore": 0,
        "defaultSignatureAlgorithm": "RS256", "enabled": True, "sslRequired": "external",
        "registrationAllowed": False, "registrationEmailAsUsername": False, "loginWithEmailAllowed": True,
        "duplicateEmailsAllowed": True, "resetPasswordAllowed": True, "verifyEmail": True,
        "otpPolicyType": "totp", "otpPolicyAlgorithm": "HmacSHA1", "otpPolicyInitialCounter": 0,
        "otpPolicyDigits": 6, "otpPolicyLookAheadWindow": 1, "otpPolicyPeriod": 30,
        "otpPolicyCodeReusable": False, "otpSupportedApplications": ["totpAppFreeOTPName",
                                                                     "totpAppGoogleName",
                                                                     "totpAppMicrosoftAuthenticatorName"],
        "users": users,
        "identityProviders": [{"alias": "google", "internalId": det_uuid(f"{src}/idp/google"),
                               "providerId": "google", "enabled": True, "trustEmail": True,
                               "storeToken": False, "addReadTokenRoleOnCreate": False,
                               "authenticateByDefault": False, "linkOnly": False,
                               "firstBrokerLoginFlowAlias": "first broker login",
                               "config": {"clientId": "1234567890-acme.apps.googleusercontent.com",
                                          "clientSecret": "**********", "syncMode": "IMPORT"}}],
        "keycloakVersion": "24.0.5",
    }
    d = os.path.join(out, "keycloak")
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "realm-export.json"), jackson(export))
    README_NOTES[src].append(
        f"realm `{realm}` (duplicateEmailsAllowed true; a real Keycloak lowercases stored emails, the "
        "`ALICE@` row keeps the upper case to exercise case-insensitive matching). Alice's OTP key is the UTF-8 bytes of the "
        "secretData value (no `secretEncoding` in credentialData); the TOTP column shows their base32.")


# ---------------------------------------------------------------------------
# generic CSV


def csv_source(out):
    src = "csv"
    rows = []
    base = dt.datetime(2024, 1, 15, 12, 0, 0, tzinfo=dt.timezone.utc)

    def add(email, password, hash_, scheme, verified, outcome, *, full_name="", phone="", role="member",
            metadata=None, offset_d=0):
        created = (base + dt.timedelta(days=offset_d, seconds=offset_d * 61)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append([email, hash_, "true" if verified else "false", full_name, phone, created, role,
                     json.dumps(metadata or {}, separators=(",", ":"))])
        note_row(src, email, "-", password, scheme, outcome, "-")

    add(addr("alice", src), pw("alice", src), make_bcrypt(pw("alice", src), "csv/alice", "2b", 10),
        "bcrypt $2b$10$", True, "imported", full_name="Alice Liddell", offset_d=0)
    add(addr("bob", src), pw("bob", src),
        make_argon2_phc(pw("bob", src), "csv/bob", "id", t=2, m=19456, p=1), "argon2id PHC m=19456 t=2 p=1",
        True, "imported", full_name="Bob Builder", offset_d=1)
    add(addr("carol", src), pw("carol", src),
        make_argon2_phc(pw("carol", src), "csv/carol", "i", t=3, m=4096, p=1), "argon2i PHC m=4096 t=3 p=1",
        False, "imported (email unverified)", full_name="Carol Singer", offset_d=2)
    add(addr("dave", src), pw("dave", src), make_bcrypt(pw("dave", src), "csv/dave", "2y", 11),
        "bcrypt $2y$11$", True, "imported (name Dave Lister, phone +4915112345678, role admin, metadata)",
        full_name="Dave Lister", phone=DAVE_PHONE, role="admin", metadata=DAVE_META, offset_d=3)
    bad_pw = f"Bad-{src}-Pw1!"
    add("not-an-address", bad_pw, make_bcrypt(bad_pw, "csv/bad", "2b"), "bcrypt $2b$10$", False,
        "refused invalid_email", offset_d=4)
    old_pw = f"Old-{src}-Pw1!"
    add(addr("oldhash", src), old_pw, md5_crypt(old_pw, "abcdefgh"), "md5-crypt $1$ (unreadable)", True,
        "refused unknown_hash_format", offset_d=5)
    dup_pw = f"Alice2-{src}-Pw1!"
    add("ALICE@" + f"{src}.example", dup_pw, make_bcrypt(dup_pw, "csv/alice-dup", "2b"), "bcrypt $2b$10$", True,
        "refused duplicate (of alice)", full_name="Alice Liddell", offset_d=6)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["email", "password_hash", "email_verified", "full_name", "phone", "created_at", "role", "metadata"])
    w.writerows(rows)
    d = os.path.join(out, "csv")
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "users.csv"), buf.getvalue())
    README_NOTES[src].append("No ids in this format (tessera assigns them); rows are keyed by address.")


# ---------------------------------------------------------------------------
# README


README_HEAD = """\
# `tessera import` fixtures

Generated by `scripts/import-fixtures.py` (deterministic: rerunning it rewrites identical files).
Every password hash was made by an implementation independent of tessera (pyca `bcrypt`,
`argon2-cffi`, Python's `hashlib.pbkdf2_hmac` / `hashlib.scrypt`, `cryptography`'s AES-CTR) and
checked with it before writing; the script's header says which made which.

The same population is in every source, with the source's name in the addresses:

* four good users, alice / bob / carol / dave, each with its own password `<Name>-<source>-Pw1!`;
  carol's address is unverified; dave has a full name, a phone and metadata; bob has a Google
  identity (provider id `google-bob-<source>`) everywhere but the CSV; alice has a TOTP factor in
  Supabase (verified mfa_factors row) and Keycloak (otp credential);
* three broken rows: `not-an-address` (refused `invalid_email`), `oldhash@<source>.example` with a
  hash tessera cannot read (refused `unknown_hash_format`), and `ALICE@<source>.example`, a
  different account with alice's address in another case, after alice (refused `duplicate`);
* Supabase only: a soft-deleted user (skipped `deleted_in_source`) and a banned one (imported
  inactive).

Passwords of the broken rows: `Bad-<source>-Pw1!`, `Old-<source>-Pw1!`, `Alice2-<source>-Pw1!`
(Supabase's banned user: `Banned-supabase-Pw1!`).
"""

SOURCE_HEAD = {
    "supabase": ("## supabase/", "users.csv (`\\copy (select * from auth.users) to 'users.csv' csv header`), "
                 "users.json (`psql -At -c 'select json_agg(u) from auth.users u'`), identities.csv, "
                 "mfa_factors.csv, and auth_schema.sql (DDL of the three tables + the same rows as INSERTs, "
                 "for reading straight from a database)."),
    "auth0": ("## auth0/", "users.ndjson (bulk user export job) and hashes.ndjson (password-hash export "
              "from Auth0 support)."),
    "firebase": ("## firebase/", "users.json (`firebase auth:export users.json --format=JSON`), "
                 "hash_config.txt (console's password hash parameters), vector.json."),
    "keycloak": ("## keycloak/", "realm-export.json (`kc.sh export --realm acme --users realm_file`)."),
    "csv": ("## csv/", "users.csv: `email,password_hash,email_verified,full_name,phone,created_at,role,metadata`."),
}

SUPABASE_NOTES = [
    "Ids are GoTrue's `auth.users.id` (fixed UUIDs). instance_id is the nil UUID, aud/role `authenticated`.",
    "alice/bob/carol hash: bcrypt `$2a$10$` (Go's x/crypto/bcrypt prefix). dave's is an argon2id PHC "
    "string: GoTrue accepts `$argon2i`/`$argon2id` (and `$fbscrypt$`) hashes imported through its admin "
    "API and keeps them in `encrypted_password`, so a real Supabase export can hold them.",
    "dave's phone is stored as GoTrue stores phones, without the `+` (`4915112345678`).",
    "The soft-deleted row is what GoTrue's `SoftDeleteUser` leaves: `deleted_at` set, `email`/`phone`/"
    "`email_change`/`phone_change` replaced by `base64url(sha256(id + value))` (phone cut to 15 chars), "
    "`encrypted_password` NULL, both metadata columns `{}`; its identity has `identity_data` `{}` and an "
    "obfuscated provider_id. The original address was `gone@supabase.example`.",
    "Empty-string token columns are written `\"\"` and NULLs as empty fields, as COPY CSV does; "
    "`confirmed_at` (generated) is in the CSV/JSON but not in the INSERTs.",
    "users.csv, identities.csv, mfa_factors.csv and users.json were checked byte for byte against "
    "what PostgreSQL 15 itself prints after loading auth_schema.sql (session TimeZone UTC).",
]


def write_readme(out):
    parts = [README_HEAD]
    for s in SOURCES:
        head, files = SOURCE_HEAD[s]
        parts.append(f"\n{head}\n\n{files}\n")
        notes = (SUPABASE_NOTES if s == "supabase" else []) + README_NOTES[s]
        if notes:
            parts.append("\n" + "".join(f"* {n}\n" for n in notes))
        parts.append("\n| # | address | id | password | hash | expected outcome | identities | TOTP secret (base32) |\n")
        parts.append("|---|---|---|---|---|---|---|---|\n")
        for i, r in enumerate(README[s], 1):
            cells = [str(i), f"`{r['address']}`" if "(was" not in r["address"] else r["address"].replace(
                r["address"].split(" ")[0], f"`{r['address'].split(' ')[0]}`", 1),
                f"`{r['id']}`" if r["id"] != "-" else "-", f"`{r['password']}`" if r["password"].endswith("!") else r["password"],
                r["scheme"], r["outcome"], r["identities"] or "-", r["totp"] or "-"]
            parts.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |\n")
    write(os.path.join(out, "README.md"), "".join(parts))


# ---------------------------------------------------------------------------


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "crates", "tessera", "tests", "fixtures", "import")
    out = os.path.abspath(out)
    check_firebase_vector()
    write_supabase(out)
    auth0(out)
    firebase(out)
    keycloak(out)
    csv_source(out)
    write_readme(out)
    print(f"wrote fixtures to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
