#!/usr/bin/env python3
"""Generate the legacy password-hash test fixture used by tessera's tests.

Usage:
    python3 scripts/make_legacy_hashes.py crates/tessera/tests/fixtures/legacy_hashes.json

The hashes come from widely used reference implementations (not from our own
Rust code), so tessera can prove it verifies hashes imported from other
systems. It needs the Python packages bcrypt and argon2-cffi. If the running
interpreter lacks them, the script makes a venv outside the repository
($TESSERA_HASH_VENV, default /tmp/tessera-legacy-hash-venv), pip-installs them
there and runs itself again from that venv.

The output is a JSON array of {"scheme", "password", "hash"} objects. The
passwords are test data only. Salts are random, so each run gives different
hashes; every hash is checked with the library that made it before the file is
written.
"""

import json
import os
import subprocess
import sys

VENV = os.environ.get("TESSERA_HASH_VENV", "/tmp/tessera-legacy-hash-venv")


def _reexec_in_venv() -> None:
    """If bcrypt/argon2-cffi are missing, make a venv outside the repo and run again from it."""
    if os.environ.get("_TESSERA_IN_HASH_VENV"):
        raise SystemExit(f"bcrypt/argon2-cffi still missing in {VENV}")
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"creating venv {VENV} (bcrypt, argon2-cffi)", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    subprocess.check_call([py, "-m", "pip", "install", "-q", "bcrypt", "argon2-cffi"])
    os.environ["_TESSERA_IN_HASH_VENV"] = "1"
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


try:
    import argon2
    import bcrypt
    from argon2 import PasswordHasher, Type
except ImportError:
    _reexec_in_venv()

BCRYPT_ROUNDS = 12
ARGON2_PARAMS = dict(time_cost=3, memory_cost=65536, parallelism=4)

# One distinct password per entry; each has 12+ chars, upper, lower, digit
# and a special character.
PASSWORDS = {
    "bcrypt-2b": "Legacy-Bcrypt2b!Pass",
    "bcrypt-2a": "Old#Bcrypt2a-Secret",
    "bcrypt-2y": "Php$Bcrypt2y-Word9",
    "argon2id-legacy": "Argon2id+Legacy#Key7",
    "argon2i-legacy": "Argon2i_Legacy%Key8",
}


def check_password(password: str) -> None:
    ok = (
        len(password) >= 12
        and any(c.isupper() for c in password)
        and any(c.islower() for c in password)
        and any(c.isdigit() for c in password)
        and any(not c.isalnum() for c in password)
    )
    if not ok:
        raise SystemExit(f"fixture password does not meet the policy: {password!r}")


def bcrypt_hash(password: str, prefix: bytes) -> str:
    h = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS, prefix=prefix))
    expected = b"$" + prefix + b"$%02d$" % BCRYPT_ROUNDS
    assert h.startswith(expected), h
    assert bcrypt.checkpw(password.encode(), h)
    assert not bcrypt.checkpw((password + "x").encode(), h)
    return h.decode("ascii")


def argon2_hash(password: str, type_: Type) -> str:
    ph = PasswordHasher(type=type_, **ARGON2_PARAMS)
    h = ph.hash(password)
    assert ph.verify(h, password)
    try:
        ph.verify(h, password + "x")
    except argon2.exceptions.VerifyMismatchError:
        pass
    else:
        raise AssertionError("argon2 accepted a wrong password")
    return h


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} OUTFILE")
    out = sys.argv[1]

    for pw in PASSWORDS.values():
        check_password(pw)
    assert len(set(PASSWORDS.values())) == len(PASSWORDS)

    entries = []

    # $2b$: the current OpenBSD / python-bcrypt prefix.
    pw = PASSWORDS["bcrypt-2b"]
    entries.append({"scheme": "bcrypt-2b", "password": pw, "hash": bcrypt_hash(pw, b"2b")})

    # $2a$: a separate real hash; the library is asked for the older prefix.
    pw = PASSWORDS["bcrypt-2a"]
    entries.append({"scheme": "bcrypt-2a", "password": pw, "hash": bcrypt_hash(pw, b"2a")})

    # $2y$: PHP's crypt_blowfish prefix (password_hash() in PHP emits it).
    # python-bcrypt cannot generate $2y$ hashes, so we take a real $2b$ hash
    # and rewrite the prefix. $2y$ and $2b$ use the same algorithm (both fixed
    # the 8-bit-character bug of the original $2a$ in crypt_blowfish), so a
    # $2b$ hash with the prefix changed to $2y$ is exactly what PHP would
    # produce for the same salt and cost. We then check that the library
    # accepts the rewritten hash.
    pw = PASSWORDS["bcrypt-2y"]
    h2b = bcrypt_hash(pw, b"2b")
    h2y = "$2y$" + h2b[len("$2b$"):]
    assert bcrypt.checkpw(pw.encode(), h2y.encode())
    assert not bcrypt.checkpw((pw + "x").encode(), h2y.encode())
    entries.append({"scheme": "bcrypt-2y", "password": pw, "hash": h2y})

    pw = PASSWORDS["argon2id-legacy"]
    entries.append({"scheme": "argon2id-legacy", "password": pw, "hash": argon2_hash(pw, Type.ID)})

    pw = PASSWORDS["argon2i-legacy"]
    entries.append({"scheme": "argon2i-legacy", "password": pw, "hash": argon2_hash(pw, Type.I)})

    assert entries[3]["hash"].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert entries[4]["hash"].startswith("$argon2i$v=19$m=65536,t=3,p=4$")

    with open(out, "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=2)
        f.write("\n")
    print(f"wrote {len(entries)} entries to {out}")


if __name__ == "__main__":
    main()
