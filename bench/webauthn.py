"""A software WebAuthn authenticator for the load benchmark, standard library only.

It plays a passkey the way a browser and a platform authenticator would (the model is
the auth-js suite's test/lib/software-authenticator.ts): ES256 (ECDSA on P-256 with
SHA-256, COSE alg -7) with the curve arithmetic written on Python integers, an
attestation object with fmt "none" and a COSE EC2 key, authenticatorData with the RP ID's
hash, flags and a sign counter, and clientDataJSON. `create` answers
PublicKeyCredentialCreationOptionsJSON with a RegistrationResponseJSON, `get` answers
PublicKeyCredentialRequestOptionsJSON with an AuthenticationResponseJSON.

Signing k·G uses a fixed-base table (32 windows of 8 bits, built once per process), so a
signature is 32 point additions and two inversions instead of 256 doublings and ~128
additions: pre-signing a load run's worth of assertions takes seconds, not minutes. `self_test()` checks the arithmetic and the encodings
against independent implementations (OpenSSL, and Node's crypto when node is installed).
"""

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile

# --- P-256 (SEC 2 secp256r1 / NIST P-256) ---------------------------------------------------
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
INFINITY = (1, 1, 0)  # Jacobian (X, Y, Z) with Z = 0


def on_curve(x, y):
    return (y * y - (x * x * x + A * x + B)) % P == 0


def jdouble(p1):
    """2·P1 in Jacobian coordinates (dbl-2001-b, a = -3)."""
    x1, y1, z1 = p1
    if z1 == 0 or y1 == 0:
        return INFINITY
    delta = z1 * z1 % P
    gamma = y1 * y1 % P
    beta = x1 * gamma % P
    alpha = 3 * (x1 - delta) * (x1 + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y1 + z1) ** 2 - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return x3, y3, z3


def jadd_affine(p1, x2, y2):
    """P1 (Jacobian) + (x2, y2) (affine, not infinity) (madd-2007-bl)."""
    x1, y1, z1 = p1
    if z1 == 0:
        return x2, y2, 1
    z1z1 = z1 * z1 % P
    u2 = x2 * z1z1 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - x1) % P
    r = 2 * (s2 - y1) % P
    if h == 0:
        return jdouble(p1) if r == 0 else INFINITY
    hh = h * h % P
    i = 4 * hh % P
    j = h * i % P
    v = x1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * y1 * j) % P
    z3 = ((z1 + h) ** 2 - z1z1 - hh) % P
    return x3, y3, z3


def jadd(p1, p2):
    """P1 + P2, both Jacobian (add-2007-bl)."""
    if p1[2] == 0:
        return p2
    if p2[2] == 0:
        return p1
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    z1z1, z2z2 = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2z2 % P, x2 * z1z1 % P
    s1, s2 = y1 * z2 * z2z2 % P, y2 * z1 * z1z1 % P
    h = (u2 - u1) % P
    r = 2 * (s2 - s1) % P
    if h == 0:
        return jdouble(p1) if r == 0 else INFINITY
    i = (2 * h) ** 2 % P
    j = h * i % P
    v = u1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * s1 * j) % P
    z3 = ((z1 + z2) ** 2 - z1z1 - z2z2) * h % P
    return x3, y3, z3


def to_affine(p1):
    x, y, z = p1
    if z == 0:
        return None
    zi = pow(z, -1, P)
    zi2 = zi * zi % P
    return x * zi2 % P, y * zi2 * zi % P


def scalar_mult(k, point):
    """k·(x, y) by plain double-and-add (any base point; the slow, obvious way)."""
    acc = INFINITY
    x, y = point
    for bit in bin(k % N)[2:]:
        acc = jdouble(acc)
        if bit == "1":
            acc = jadd_affine(acc, x, y)
    return to_affine(acc)


_TABLE = None  # _TABLE[i][j] = j·2^(8i)·G, affine; j = 0 unused


def _table():
    global _TABLE
    if _TABLE is None:
        table, base = [], (GX, GY, 1)
        for _ in range(32):
            row, acc = [None], INFINITY
            for _ in range(255):
                acc = jadd(acc, base)
                row.append(acc)
            # One inversion per row (Montgomery's trick) instead of one per point.
            zs, prefix = [p[2] for p in row[1:]], [1]
            for z in zs:
                prefix.append(prefix[-1] * z % P)
            inv = pow(prefix[-1], -1, P)
            affine = [None] * 256
            for j in range(255, 0, -1):
                zi = inv * prefix[j - 1] % P
                inv = inv * zs[j - 1] % P
                x, y, _ = row[j]
                zi2 = zi * zi % P
                affine[j] = (x * zi2 % P, y * zi2 * zi % P)
            table.append(affine)
            base = jdouble(row[128])  # 256·base
        _TABLE = table
    return _TABLE


def base_mult(k):
    """k·G with the fixed-base table: one addition per non-zero byte of k."""
    table, acc, k, i = _table(), INFINITY, k % N, 0
    while k:
        byte = k & 0xFF
        if byte:
            x, y = table[i][byte]
            acc = jadd_affine(acc, x, y)
        k >>= 8
        i += 1
    return to_affine(acc)


def der_int(v):
    raw = v.to_bytes((v.bit_length() + 8) // 8, "big")  # a leading 0 when the top bit is set
    while len(raw) > 1 and raw[0] == 0 and raw[1] < 0x80:
        raw = raw[1:]
    return b"\x02" + der_len(len(raw)) + raw


def der_len(n):
    return bytes([n]) if n < 0x80 else b"\x81" + bytes([n]) if n < 0x100 else b"\x82" + n.to_bytes(2, "big")


def der_seq(*parts):
    body = b"".join(parts)
    return b"\x30" + der_len(len(body)) + body


# id-ecPublicKey, prime256v1
OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")
OID_P256 = bytes.fromhex("06082a8648ce3d030107")


def spki_der(x, y):
    """SubjectPublicKeyInfo of a P-256 point (what PEM "PUBLIC KEY" and WebAuthn's
    getPublicKey() hold)."""
    point = b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
    return der_seq(der_seq(OID_EC_PUBLIC_KEY, OID_P256), b"\x03" + der_len(len(point) + 1) + b"\x00" + point)


class EcKey:
    """A P-256 key pair; `d` the private scalar, (x, y) the public point."""

    def __init__(self, d=None):
        self.d = d if d is not None else secrets.randbelow(N - 1) + 1
        self.x, self.y = base_mult(self.d)

    def spki_der(self):
        return spki_der(self.x, self.y)

    def sign(self, message):
        """ECDSA with SHA-256, a fresh random k, low S; the ASN.1 DER signature
        (SEQUENCE of two INTEGERs), the form WebAuthn's ES256 signatures take."""
        z = int.from_bytes(hashlib.sha256(message).digest(), "big")
        while True:
            k = secrets.randbelow(N - 1) + 1
            r = base_mult(k)[0] % N
            if r == 0:
                continue
            s = pow(k, -1, N) * (z + r * self.d) % N
            if s == 0:
                continue
            return der_seq(der_int(r), der_int(min(s, N - s)))


def verify(x, y, message, signature):
    """ECDSA P-256/SHA-256 verification of a DER signature (used by the self-test as a
    second opinion; the authorities are OpenSSL and Node)."""
    r, s = parse_der_signature(signature)
    if not (0 < r < N and 0 < s < N):
        return False
    z = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, N)
    p1 = base_mult(z * w % N)
    p2 = scalar_mult(r * w % N, (x, y))
    total = INFINITY
    for pt in (p1, p2):
        if pt:
            total = jadd_affine(total, *pt)
    res = to_affine(total)
    return res is not None and res[0] % N == r


def parse_der_signature(sig):
    assert sig[0] == 0x30 and sig[1] == len(sig) - 2, "not a DER SEQUENCE"
    out, i = [], 2
    for _ in range(2):
        assert sig[i] == 0x02
        n = sig[i + 1]
        out.append(int.from_bytes(sig[i + 2:i + 2 + n], "big"))
        i += 2 + n
    assert i == len(sig)
    return out


# --- CBOR (the subset attestation objects and COSE keys need) -----------------------------------
def _cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError("too long")


def cbor(value):
    """Integers, byte and text strings, lists and maps. Maps keep their insertion order:
    callers give the keys in CTAP2 canonical order (as the reference does)."""
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -value - 1)
    if isinstance(value, (bytes, bytearray)):
        return _cbor_head(2, len(value)) + bytes(value)
    if isinstance(value, str):
        raw = value.encode()
        return _cbor_head(3, len(raw)) + raw
    if isinstance(value, list):
        return _cbor_head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return _cbor_head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(f"no CBOR for {type(value).__name__}")


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


class Authenticator:
    """One discoverable ES256 credential, as a platform authenticator holds it."""

    def __init__(self, rp_id, origin, key=None, credential_id=None):
        self.rp_id, self.origin = rp_id, origin
        self.key = key or EcKey()
        self.credential_id = credential_id or secrets.token_bytes(32)
        self.user_handle = None
        self.sign_count = 0

    def cose_key(self):
        # CTAP2 canonical order: 1 (kty: EC2), 3 (alg: ES256), -1 (crv: P-256), -2 (x), -3 (y).
        return cbor({1: 2, 3: -7, -1: 1, -2: self.key.x.to_bytes(32, "big"), -3: self.key.y.to_bytes(32, "big")})

    def rp_id_hash(self):
        return hashlib.sha256(self.rp_id.encode()).digest()

    def client_data(self, kind, challenge):
        # A browser re-encodes the challenge's bytes: base64url without padding.
        return json.dumps({"type": kind, "challenge": b64url(b64url_decode(challenge)), "origin": self.origin,
                           "crossOrigin": False}, separators=(",", ":")).encode()

    def _check_rp(self, rp_id):
        if rp_id is not None and rp_id != self.rp_id:
            raise ValueError(f"the options name RP ID {rp_id!r}; this authenticator is for {self.rp_id!r}")

    def create(self, options):
        """navigator.credentials.create() for PublicKeyCredentialCreationOptionsJSON."""
        self._check_rp((options.get("rp") or {}).get("id"))
        algs = [p.get("alg") for p in options.get("pubKeyCredParams") or []]
        if algs and -7 not in algs:
            raise ValueError(f"the options do not offer ES256 (alg -7): {algs}")
        self.user_handle = b64url_decode(options["user"]["id"])
        auth_data = (self.rp_id_hash() + bytes([FLAG_UP | FLAG_UV | FLAG_AT]) + (0).to_bytes(4, "big")
                     + bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self.cose_key())
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self.client_data("webauthn.create", options["challenge"])
        cid = b64url(self.credential_id)
        return {
            "id": cid,
            "rawId": cid,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                # What a browser's toJSON() adds (WebAuthn level 3).
                "authenticatorData": b64url(auth_data),
                "publicKey": b64url(self.key.spki_der()),
                "publicKeyAlgorithm": -7,
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(self, options, counter=None):
        """navigator.credentials.get() for PublicKeyCredentialRequestOptionsJSON. The sign
        counter goes up by one per assertion; `counter` sets it instead (pre-signing a pool
        in the order its bodies will be sent)."""
        if self.user_handle is None:
            raise RuntimeError("no credential registered: call create() first")
        self._check_rp(options.get("rpId"))
        allowed = [c.get("id") for c in options.get("allowCredentials") or []]
        if allowed and b64url(self.credential_id) not in allowed:
            raise ValueError("the options do not allow this credential")
        if counter is None:
            self.sign_count += 1
            counter = self.sign_count
        else:
            self.sign_count = max(self.sign_count, counter)
        auth_data = self.rp_id_hash() + bytes([FLAG_UP | FLAG_UV]) + counter.to_bytes(4, "big")
        client_data = self.client_data("webauthn.get", options["challenge"])
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest())
        cid = b64url(self.credential_id)
        return {
            "id": cid,
            "rawId": cid,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(self.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def state(self):
        """What another process needs to sign for this credential (picklable)."""
        return (self.rp_id, self.origin, self.key.d, self.credential_id, self.user_handle)

    @classmethod
    def from_state(cls, state):
        rp_id, origin, d, credential_id, user_handle = state
        a = cls(rp_id, origin, EcKey(d), credential_id)
        a.user_handle = user_handle
        return a


def sign_batch(state, jobs):
    """Assertion bodies for one credential: `jobs` is a list of (challenge_id, options,
    counter); the JSON bodies of POST /v1/auth/passkeys/authentication/verify."""
    auth = Authenticator.from_state(state)
    return [json.dumps({"challenge_id": cid, "credential": auth.get(opts, counter)}, separators=(",", ":"))
            for cid, opts, counter in jobs]


# --- self-test ---------------------------------------------------------------------------------
def _cbor_decode(data, i=0):
    """A small CBOR decoder (written apart from the encoder) for the self-test."""
    head = data[i]
    major, info = head >> 5, head & 31
    i += 1
    if info < 24:
        n = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        n = int.from_bytes(data[i:i + size], "big")
        i += size
    else:
        raise ValueError(f"unsupported CBOR head {head:#x}")
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major == 2:
        return bytes(data[i:i + n]), i + n
    if major == 3:
        return data[i:i + n].decode(), i + n
    if major == 4:
        out = []
        for _ in range(n):
            v, i = _cbor_decode(data, i)
            out.append(v)
        return out, i
    if major == 5:
        out = []
        for _ in range(n):
            k, i = _cbor_decode(data, i)
            v, i = _cbor_decode(data, i)
            out.append((k, v))
        return out, i
    if major == 7 and info in (20, 21):
        return info == 21, i
    raise ValueError(f"unsupported CBOR major type {major}")


def _pem(der, label):
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


_NODE_VERIFY = r"""
const crypto = require('crypto');
const cases = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));
const out = cases.map(c => {
  const key = crypto.createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: c.x, y: c.y }, format: 'jwk' });
  const spki = key.export({ type: 'spki', format: 'der' }).toString('base64url');
  const ok = crypto.verify('sha256', Buffer.from(c.data, 'base64url'), key, Buffer.from(c.sig, 'base64url'));
  return { ok, spki };
});
process.stdout.write(JSON.stringify(out));
"""


def self_test(log=print):
    """Checks the authenticator offline; raises AssertionError on the first failure."""
    checks = 0

    def check(cond, what):
        nonlocal checks
        if not cond:
            raise AssertionError(what)
        checks += 1

    # The curve and the two scalar multiplications.
    check(on_curve(GX, GY), "G is on the curve")
    check(scalar_mult(N - 1, (GX, GY)) == (GX, P - GY), "(n-1)·G = -G")
    check(to_affine(jadd_affine(jadd_affine(INFINITY, GX, GY), GX, P - GY)) is None, "G + -G = O")
    for k in [1, 2, 3, 255, 256, 257, 2**255, N - 1, N - 2] + [secrets.randbelow(N) for _ in range(20)]:
        check(base_mult(k) == scalar_mult(k, (GX, GY)), f"fixed-base k·G = double-and-add k·G for k={k:#x}")
        if base_mult(k):
            check(on_curve(*base_mult(k)), "k·G is on the curve")

    # DER integers: minimal, a leading zero exactly when the top bit is set.
    check(der_int(0x7F) == b"\x02\x01\x7f" and der_int(0x80) == b"\x02\x02\x00\x80", "DER integers")
    check(der_int(1 << 255)[:4] == b"\x02\x21\x00\x80", "DER 33-byte integer")

    openssl = shutil.which("openssl")
    node = shutil.which("node")
    check(openssl is not None, "openssl is installed (the independent verifier)")
    with tempfile.TemporaryDirectory(prefix="tessera-webauthn-test.") as tmp:
        def path(name):
            return os.path.join(tmp, name)

        def run(args, **kw):
            return subprocess.run(args, capture_output=True, **kw)

        # OpenSSL derives the public key from our private scalar: same point as ours.
        key = EcKey()
        sec1 = der_seq(b"\x02\x01\x01", b"\x04\x20" + key.d.to_bytes(32, "big"), b"\xa0" + der_len(len(OID_P256))
                       + OID_P256)
        with open(path("priv.der"), "wb") as f:
            f.write(sec1)
        r = run([openssl, "ec", "-inform", "DER", "-in", path("priv.der"), "-pubout", "-outform", "DER"])
        check(r.returncode == 0, f"openssl ec read the key: {r.stderr.decode()}")
        check(r.stdout == key.spki_der(), "openssl's public key for d = ours (d·G and the SPKI encoding)")

        # Signatures over random messages, each verified by `openssl dgst -verify`.
        with open(path("pub.pem"), "w") as f:
            f.write(_pem(key.spki_der(), "PUBLIC KEY"))
        for i in range(12):
            msg = secrets.token_bytes(37 + i * 13)
            sig = key.sign(msg)
            with open(path("msg"), "wb") as f:
                f.write(msg)
            with open(path("sig"), "wb") as f:
                f.write(sig)
            r = run([openssl, "dgst", "-sha256", "-verify", path("pub.pem"), "-signature", path("sig"), path("msg")])
            check(r.returncode == 0 and b"Verified OK" in r.stdout, f"openssl verifies signature {i}: {r.stdout!r}")
            check(verify(key.x, key.y, msg, sig), f"our verify agrees on signature {i}")
            r_, s_ = parse_der_signature(sig)
            check(s_ <= N // 2, "low S")
        with open(path("msg"), "wb") as f:
            f.write(msg + b"!")
        r = run([openssl, "dgst", "-sha256", "-verify", path("pub.pem"), "-signature", path("sig"), path("msg")])
        check(r.returncode != 0, "openssl refuses a signature over another message")

        # A registration and assertions, taken apart as a relying party would.
        origin = "http://localhost:8080"
        auth = Authenticator("localhost", origin)
        user_id = b64url(secrets.token_bytes(16))
        challenge = b64url(secrets.token_bytes(32))
        reg = auth.create({"rp": {"id": "localhost", "name": "tessera"}, "user": {"id": user_id, "name": "a@b.c",
                           "displayName": "A"}, "challenge": challenge,
                           "pubKeyCredParams": [{"type": "public-key", "alg": a} for a in (-7, -8, -257)]})
        check(reg["id"] == reg["rawId"] == b64url(auth.credential_id) and reg["type"] == "public-key", "ids")
        cd = json.loads(b64url_decode(reg["response"]["clientDataJSON"]))
        check(cd == {"type": "webauthn.create", "challenge": challenge, "origin": origin, "crossOrigin": False},
              f"registration clientDataJSON {cd}")
        att_raw = b64url_decode(reg["response"]["attestationObject"])
        att, end = _cbor_decode(att_raw)
        check(end == len(att_raw), "the attestation object is one CBOR item")
        check([k for k, _ in att] == ["fmt", "attStmt", "authData"], "attestation keys in canonical order")
        att = dict(att)
        check(att["fmt"] == "none" and att["attStmt"] == [], "fmt none, empty attStmt")
        ad = att["authData"]
        check(ad == b64url_decode(reg["response"]["authenticatorData"]), "authenticatorData = the one attested")
        check(ad[:32] == hashlib.sha256(b"localhost").digest(), "rpIdHash")
        check(ad[32] == FLAG_UP | FLAG_UV | FLAG_AT, "flags UP|UV|AT")
        check(ad[33:37] == bytes(4) and ad[37:53] == bytes(16), "counter 0, zero AAGUID")
        cid_len = int.from_bytes(ad[53:55], "big")
        check(ad[55:55 + cid_len] == auth.credential_id, "credential id in the attested data")
        cose_raw = ad[55 + cid_len:]
        cose, end = _cbor_decode(cose_raw)
        check(end == len(cose_raw), "nothing after the COSE key")
        check([k for k, _ in cose] == [1, 3, -1, -2, -3], f"COSE key order {[k for k, _ in cose]}")
        cose = dict(cose)
        check(cose[1] == 2 and cose[3] == -7 and cose[-1] == 1, "kty EC2, alg ES256, crv P-256")
        x, y = int.from_bytes(cose[-2], "big"), int.from_bytes(cose[-3], "big")
        check(len(cose[-2]) == len(cose[-3]) == 32 and on_curve(x, y), "x, y: 32 bytes each, on the curve")

        cases = []
        for n in range(1, 4):
            chal = b64url(secrets.token_bytes(32))
            got = auth.get({"challenge": chal, "rpId": "localhost", "userVerification": "required"})
            resp = got["response"]
            check(b64url_decode(resp["userHandle"]) == b64url_decode(user_id), "userHandle = the user's id")
            cdj = b64url_decode(resp["clientDataJSON"])
            check(json.loads(cdj) == {"type": "webauthn.get", "challenge": chal, "origin": origin,
                                      "crossOrigin": False}, "assertion clientDataJSON")
            ad = b64url_decode(resp["authenticatorData"])
            check(len(ad) == 37 and ad[:32] == hashlib.sha256(b"localhost").digest(), "assertion rpIdHash")
            check(ad[32] == FLAG_UP | FLAG_UV and int.from_bytes(ad[33:], "big") == n, "flags UP|UV, counter n")
            data = ad + hashlib.sha256(cdj).digest()
            sig = b64url_decode(resp["signature"])
            # Verified with the key as the relying party has it: from the COSE key.
            with open(path("cose.pem"), "w") as f:
                f.write(_pem(spki_der(x, y), "PUBLIC KEY"))
            with open(path("msg"), "wb") as f:
                f.write(data)
            with open(path("sig"), "wb") as f:
                f.write(sig)
            r = run([openssl, "dgst", "-sha256", "-verify", path("cose.pem"), "-signature", path("sig"),
                     path("msg")])
            check(r.returncode == 0, f"openssl verifies assertion {n}")
            cases.append({"x": b64url(cose[-2]), "y": b64url(cose[-3]), "data": b64url(data),
                          "sig": resp["signature"]})
        cases.append(dict(cases[-1], data=b64url(b"x" + b64url_decode(cases[-1]["data"]))))  # must fail

        # Pre-signing with an explicit counter, in another process's shoes.
        bodies = sign_batch(auth.state(), [("c1", {"challenge": challenge}, 7)])
        got = json.loads(bodies[0])
        ad = b64url_decode(got["credential"]["response"]["authenticatorData"])
        check(got["challenge_id"] == "c1" and int.from_bytes(ad[33:], "big") == 7, "sign_batch counter")
        data = ad + hashlib.sha256(b64url_decode(got["credential"]["response"]["clientDataJSON"])).digest()
        cases.append({"x": b64url(cose[-2]), "y": b64url(cose[-3]), "data": b64url(data),
                      "sig": got["credential"]["response"]["signature"]})

        if node:
            with open(path("cases.json"), "w") as f:
                json.dump(cases, f)
            r = run([node, "-e", _NODE_VERIFY, path("cases.json")])
            check(r.returncode == 0, f"node ran: {r.stderr.decode()[:500]}")
            res = json.loads(r.stdout)
            check([c["ok"] for c in res] == [True, True, True, False, True], f"node's crypto.verify: {res}")
            check(all(b64url_decode(c["spki"]) == auth.key.spki_der() for c in res), "node's SPKI = ours")
            check(b64url_decode(reg["response"]["publicKey"]) == auth.key.spki_der(), "publicKey = SPKI")
        else:
            log("webauthn self-test: node not found; OpenSSL alone checked the signatures")
    log(f"webauthn self-test: {checks} checks passed (OpenSSL{', Node' if node else ''})")
    return checks


if __name__ == "__main__":
    self_test()
