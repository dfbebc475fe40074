#!/usr/bin/env python3
"""tessera's load benchmark; run it through bench/run, which builds first.

Starts the release binary on SQLite (and on PostgreSQL when its server binaries are
found), creates users, runs every scenario with wrk for a fixed time after a warm-up,
prints one markdown table and writes bench/results/latest.json. Standard library only:
the passkey scenario's software authenticator is bench/webauthn.py (`--self-test`
checks it offline). The oauth scenario signs in at oidc-provider-mock, the OpenID
Connect provider of the social sign-in tests (`scripts/oidc-provider` installs it),
started and stopped here; its load comes from Python processes of the harness (wrk
cannot carry a cookie and a code from one server to the other). The oauth_code and
oauth_refresh scenarios load tessera's own provider (issue 31) with wrk: a confidential
client registered by an admin, browsers signed in at its pages in the set-up. The
hook_login and webhooks scenarios (issue 32) start servers of their own beside the
main one, calling a loopback receiver the harness runs (Receiver, http.server).
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
import multiprocessing

import webauthn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "bench", "lua")
PASSWORD = "Bench-Passw0rd!x"
PASSKEY_RP_ID = "localhost"
CORES = os.cpu_count() or 1
# Rounds of floor and /me, alternating on one server (see bench_backend).
ROUNDS = 3


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(port, method, path, body=None, timeout=30, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        if token:
            headers["authorization"] = f"Bearer {token}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        res = conn.getresponse()
        data = res.read()
        return res.status, (json.loads(data) if data else None)
    finally:
        conn.close()


def rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class RssSampler:
    """Samples a process's RSS every 50 ms while a scenario runs; keeps the peak."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid) or 0)
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def reset(self):
        self.peak = 0

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --- PostgreSQL ---------------------------------------------------------------------
class Postgres:
    """A throwaway PostgreSQL server, as scripts/test starts one: an unprivileged user
    (postgres, when we are root), a temp directory, a free loopback port."""

    def __init__(self, bindir):
        self.bindir, self.tmp, self.data, self.port, self.url = bindir, None, None, None, None
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres" if _user_exists("postgres") else "tessera-test"
            if not _user_exists(self.user):
                subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                                "--shell", "/usr/sbin/nologin", self.user], check=True)

    def _as(self, args, **kw):
        if self.user:
            args = ["runuser", "-u", self.user, "--"] + args
        return subprocess.run(args, cwd="/", **kw)

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="tessera-bench-pg.", dir="/tmp")
        if self.user:
            shutil.chown(self.tmp, self.user)
        os.chmod(self.tmp, 0o700)
        self.data = os.path.join(self.tmp, "data")
        sock = os.path.join(self.tmp, "sock")
        self._as(["mkdir", "-m", "700", sock], check=True)
        self._as([f"{self.bindir}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8", "--locale=C"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(5):
            self.port = free_port()
            # fsync stays on; synchronous_commit=off gives the durability of SQLite's
            # WAL + synchronous=NORMAL that the SQLite runs use (no flush per commit).
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sock} -c synchronous_commit=off "
                    f"-c max_connections=200 -c shared_buffers=128MB")
            r = self._as([f"{self.bindir}/pg_ctl", "-D", self.data, "-l", f"{self.tmp}/postgres.log", "-w",
                          "-t", "60", "-o", opts, "start"], stdout=subprocess.DEVNULL)
            if r.returncode == 0:
                self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
                return
        raise RuntimeError("could not start PostgreSQL")

    def create_database(self, name):
        """A second database on this server; its URL."""
        self._as([f"{self.bindir}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                 check=True)
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def version(self):
        out = subprocess.run([f"{self.bindir}/pg_ctl", "--version"], capture_output=True, text=True).stdout
        return out.strip()

    def stop(self):
        if not self.tmp:
            return
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._as([f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None


def _user_exists(name):
    return subprocess.run(["id", "-u", name], capture_output=True).returncode == 0


def find_pg_bin():
    cands = []
    for tool in ("pg_ctl", "initdb"):
        p = shutil.which(tool)
        if p:
            cands.append(os.path.dirname(os.path.realpath(p)))
    base = "/usr/lib/postgresql"
    if os.path.isdir(base):
        cands += [os.path.join(base, v, "bin") for v in os.listdir(base)]
    best, bestv = None, 0
    for d in cands:
        if not all(os.access(os.path.join(d, t), os.X_OK) for t in ("pg_ctl", "initdb", "postgres")):
            continue
        m = re.search(r"(\d+)", subprocess.run([f"{d}/pg_ctl", "--version"], capture_output=True,
                                               text=True).stdout)
        if m and int(m.group(1)) > bestv:
            best, bestv = d, int(m.group(1))
    return best


# --- the server -----------------------------------------------------------------------
class Server:
    def __init__(self, binary, database_url, workdir, extra_env=None, flood_limits=False):
        self.binary, self.database_url, self.workdir = binary, database_url, workdir
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update({
            "DATABASE_URL": database_url,
            # Limits on (the flood scenario measures their memory) but out of the way of
            # a load from one address.
            "RATE_LIMIT_LOGIN": "100000000/1s",
            "RATE_LIMIT_REGISTER": "100000000/1s",
            "RATE_LIMIT_VERIFY": "100000000/1s",
            "RATE_LIMIT_RECOVER": "3/1h",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            # The provider's issuer (and the social sign-in's callback): the address the
            # harness reaches the server at (PUBLIC_URL's default, said explicitly).
            "PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "LOG_LEVEL": "warn",
            # The default limits allow 5 sign-ins per 15 minutes per IP: a load test
            # from one address needs them off.
            "RATE_LIMIT_ENABLED": "true" if flood_limits else "false",
            "JWT_SECRET_KEY": secrets.token_urlsafe(48),
            "SECURE_COOKIES": "false",
            "OPENAPI_ENABLED": "false",
            # The passkey scenario's authenticator signs for this relying party and origin.
            "WEBAUTHN_RP_ID": PASSKEY_RP_ID,
            "WEBAUTHN_RP_ORIGINS": f"http://{PASSKEY_RP_ID}:{self.port}",
        })
        self.env.update(extra_env or {})
        self.proc = None
        self.startup_ms = None

    def start(self):
        logf = open(os.path.join(self.workdir, f"server-{self.port}.log"), "wb")
        started = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "serve"], env=self.env, cwd=self.workdir, stdout=logf,
                                     stderr=subprocess.STDOUT)
        # Start-up time: from exec to the first 200 on /health.
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tessera exited with {self.proc.returncode}; see {logf.name}")
            try:
                status, _ = http_json(self.port, "GET", "/health", timeout=1)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - started > 60:
                raise RuntimeError("tessera did not answer /health within 60 s")
            time.sleep(0.002)
        self.startup_ms = (time.monotonic() - started) * 1000
        return self

    @property
    def origin(self):
        return self.env["WEBAUTHN_RP_ORIGINS"]

    def rss_mib(self, field="VmRSS"):
        kib = rss_kib(self.proc.pid, field)
        return None if kib is None else kib / 1024

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- wrk ----------------------------------------------------------------------------------
def wrk(port, path, script, conns, seconds, threads=None, env=None, timeout_s=10):
    threads = threads or min(CORES, conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", f"--timeout={timeout_s}s",
           "-s", os.path.join(LUA, script), f"http://127.0.0.1:{port}{path}"]
    e = dict(os.environ)
    e["BENCH_LUA_DIR"] = LUA
    e["BENCH_THREADS"] = str(threads)
    e.update(env or {})
    if "BENCH_RUN_ID" in e:
        e["BENCH_RUN_ID"] += "-" + secrets.token_hex(3)
    return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_result(proc):
    out, err = proc.communicate()
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            r = json.loads(line[len("BENCH_RESULT "):])
            # A script that counts its non-200 answers (passkey_login.lua) has them as its
            # errors of status: wrk's own count is of answers >= 400 only.
            status = r.get("non200", r["status"])
            errors = r["connect"] + r["read"] + r["write"] + status + r["timeout"]
            detail = {k: r[k] for k in ("connect", "read", "write", "status", "timeout", "non200", "exhausted")
                      if r.get(k)}
            res = {
                "requests": r["requests"],
                "rps": r["requests"] / (r["duration_us"] / 1e6),
                "p50_ms": r["p50_us"] / 1000,
                "p90_ms": r["p90_us"] / 1000,
                "p99_ms": r["p99_us"] / 1000,
                "max_ms": r["max_us"] / 1000,
                "errors": errors,
                "error_detail": detail,
            }
            if "non200" in r:
                res["ok_rps"] = (r["requests"] - r["non200"]) / (r["duration_us"] / 1e6)
                res["exhausted"] = r.get("exhausted", 0)
            if "kinds" in r:
                # A script that times its kinds of request apart (oauth_code.lua): each
                # kind's successful answers, per second and their latencies.
                res["kinds"] = {k: {"count": v["count"], "rps": v["count"] / (r["duration_us"] / 1e6),
                                    **{f"{q}_ms": v.get(f"{q}_us", 0) / 1000 for q in ("p50", "p90", "p99", "max")}}
                                for k, v in r["kinds"].items()}
            return res
    raise RuntimeError(f"wrk gave no result:\n{out}\n{err}")


def run_wrk(port, path, script, conns, args, env=None, threads=None, warmup=True, warmup_env=None):
    """A warm-up run that is thrown away, then the measured run. `warmup_env` replaces
    `env` for the warm-up (the refresh scenario warms up on chains of its own: a token
    rotated twice during the warm-up would be a reuse when the measured run presents it)."""
    if warmup and args.warmup > 0:
        wrk_result(wrk(port, path, script, conns, args.warmup, threads=threads, env=warmup_env or env))
    return wrk_result(wrk(port, path, script, conns, args.duration, threads=threads, env=env))


def median_run(runs):
    """The run with the median req/s (the lower middle one of an even count)."""
    return sorted(runs, key=lambda r: r["rps"])[(len(runs) - 1) // 2]


# --- set-up --------------------------------------------------------------------------------
def sign_in(port, email):
    """Signs in; returns the access token (body) and the refresh token (cookie)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/auth/login", body=json.dumps({"email": email, "password": PASSWORD}),
                     headers={"content-type": "application/json"})
        res = conn.getresponse()
        body = res.read()
        m = re.match(r"refresh_token=([^;]+)", res.getheader("set-cookie") or "")
        if res.status != 200 or not m:
            raise RuntimeError(f"sign-in answered {res.status}: {body[:200]!r}")
        return json.loads(body)["access_token"], m.group(1)
    finally:
        conn.close()


def create_users(port, count, run_id, workdir):
    """Signs up `count` users and signs each in twice: the first session's access token is
    used by the /me scenario and its refresh token starts one chain of the refresh
    scenario (rotating it leaves the access token valid); the second session's refresh
    token starts a chain of the refresh warm-up. Writes users, access and refresh tokens
    to files."""
    emails = [f"user-{run_id}-{i}@bench.example" for i in range(count)]

    def make(email):
        status, body = http_json(port, "POST", "/v1/users",
                                 {"email": email, "password": PASSWORD, "full_name": "Bench User"})
        if status != 201:
            raise RuntimeError(f"sign-up answered {status}: {body}")
        return sign_in(port, email) + sign_in(port, email)[1:]

    with ThreadPoolExecutor(max_workers=2 * CORES) as pool:
        tokens = list(pool.map(make, emails))
    os.makedirs(workdir, exist_ok=True)
    files = {name: os.path.join(workdir, f"{name}.txt") for name in ("users", "tokens", "refresh", "refresh_warmup")}
    with open(files["users"], "w") as f:
        f.writelines(f"{e} {PASSWORD}\n" for e in emails)
    with open(files["tokens"], "w") as f:
        f.writelines(f"{access}\n" for access, _, _ in tokens)
    with open(files["refresh"], "w") as f:
        f.writelines(f"{refresh}\n" for _, refresh, _ in tokens)
    with open(files["refresh_warmup"], "w") as f:
        f.writelines(f"{refresh}\n" for _, _, refresh in tokens)
    return files


# --- scenarios --------------------------------------------------------------------------------
def row(scenario, backend, conns, r, derived=""):
    return {"scenario": scenario, "backend": backend, "conns": conns, **r, "derived": derived}


SUPABASE_SIGN_IN = "/auth/v1/token?grant_type=password"
SUPABASE_REFRESH = "/auth/v1/token?grant_type=refresh_token"


def supabase_call(port, path, body):
    """POST a JSON body to the Supabase surface; (status, parsed JSON or None, raw text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
        res = conn.getresponse()
        raw = res.read().decode("utf-8", "replace")
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return res.status, parsed, raw
    finally:
        conn.close()


def supabase_sessions(port, users_file, workdir):
    """Two sessions per bench user, signed in on the Supabase surface (POST
    /auth/v1/token?grant_type=password, GoTrue's answer {access_token, token_type,
    expires_in, expires_at, refresh_token, user}): the first refresh token of each starts
    a chain of the supabase scenario, the second a chain of its warm-up. A server without
    that endpoint (404, 405) gets native sign-ins instead: their sessions are the same.
    Writes both files; their paths."""
    with open(users_file) as f:
        emails = [line.split()[0] for line in f if line.strip()]
    native = threading.Event()

    def one(email):
        if not native.is_set():
            status, body, raw = supabase_call(port, SUPABASE_SIGN_IN, {"email": email, "password": PASSWORD})
            if status == 200 and isinstance(body, dict) and body.get("refresh_token"):
                return body["refresh_token"]
            if status not in (404, 405):
                raise RuntimeError(f"POST {SUPABASE_SIGN_IN} answered {status}: {raw[:300]}")
            if not native.is_set():
                native.set()
                log(f"supabase: POST {SUPABASE_SIGN_IN} answered {status}; signing in on /v1/auth/login instead")
        return sign_in(port, email)[1]

    with ThreadPoolExecutor(max_workers=2 * CORES) as pool:
        tokens = list(pool.map(lambda e: (one(e), one(e)), emails))
    os.makedirs(workdir, exist_ok=True)
    files = {name: os.path.join(workdir, f"{name}.txt") for name in ("supabase_refresh", "supabase_refresh_warmup")}
    with open(files["supabase_refresh"], "w") as f:
        f.writelines(f"{measured}\n" for measured, _ in tokens)
    with open(files["supabase_refresh_warmup"], "w") as f:
        f.writelines(f"{warmup}\n" for _, warmup in tokens)
    return files, emails


def supabase_check(port, email):
    """One rotation on a session of its own, checked the way auth-js reads it: 200 with
    access_token, refresh_token (a new one), expires_in and token_type "bearer"."""
    status, body, raw = supabase_call(port, SUPABASE_SIGN_IN, {"email": email, "password": PASSWORD})
    old = body.get("refresh_token") if status == 200 and isinstance(body, dict) else None
    old = old or sign_in(port, email)[1]
    status, body, raw = supabase_call(port, SUPABASE_REFRESH, {"refresh_token": old})
    problems = []
    if status != 200:
        problems.append(f"status {status}")
    elif not isinstance(body, dict):
        problems.append("the answer is not a JSON object")
    else:
        problems += [f"no {k}" for k in ("access_token", "refresh_token", "expires_in") if not body.get(k)]
        if body.get("token_type") != "bearer":
            problems.append(f"token_type {body.get('token_type')!r}, not 'bearer'")
        if body.get("refresh_token") == old:
            problems.append("the refresh token was not rotated")
    if problems:
        raise RuntimeError(f"POST {SUPABASE_REFRESH} does not work: {', '.join(problems)}; answer: {raw[:300]}")


def supabase_refresh(server, files, args, workdir, label, native):
    """The supabase scenario: refresh on /auth/v1/token, each connection rotating its own
    chains with refresh.lua; derived: its ratio to the native refresh of this run
    (`native`, the refresh scenario's result, or None when it did not run). A server that
    cannot do it gives a row of zeros that says why, and the run goes on."""
    scenario = f"supabase: POST {SUPABASE_REFRESH} (rotation)"
    try:
        log(f"{label}: supabase: signing in {args.users} users twice on {SUPABASE_SIGN_IN}")
        sb, emails = supabase_sessions(server.port, files["users"], os.path.join(workdir, "supabase"))
        supabase_check(server.port, emails[0])
        log(f"{label}: supabase refresh")
        r = run_wrk(server.port, SUPABASE_REFRESH, "refresh.lua", args.refresh_conns, args,
                    env={"BENCH_REFRESH": sb["supabase_refresh"]},
                    warmup_env={"BENCH_REFRESH": sb["supabase_refresh_warmup"]})
    except Exception as e:  # noqa: BLE001 - reported in the table, the other scenarios go on
        log(f"{label}: supabase: error: {e}")
        return _failed_row(scenario, label, args.refresh_conns, e)
    return _rotation_row(scenario, label, args.refresh_conns, r, native, "supabase")


def _rotation_row(scenario, label, conns, r, native, name):
    """The row of a refresh scenario on another surface (`name`: supabase, oauth refresh):
    its rate as a share of the native refresh of this run (`native`, None when it did not
    run), kept as `<name>_over_refresh`."""
    if r["errors"]:
        log(f"{label}: {name}: warning: {r['errors']} of {r['requests']} requests failed "
            f"({r['error_detail']}); a failed rotation loses its chain")
    if native and native["rps"]:
        ratio = r["rps"] / native["rps"]
        derived = f"{ratio:.0%} of native refresh ({fmt_int(native['rps'])}/s, this run)"
    else:
        ratio = None
        derived = "native refresh not run (add refresh to --only for the ratio)"
    out = row(scenario, label, conns, r, derived)
    out[f"{name.replace(' ', '_')}_over_refresh"] = ratio
    return out


def totp_code(secret_b32, step):
    """The RFC 6238 code (SHA-1, 6 digits) of a base32 secret at a 30-second step."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 15
    return f"{(struct.unpack('>I', mac[offset:offset + 4])[0] & 0x7fffffff) % 1_000_000:06d}"


def create_mfa_users(port, count, run_id, workdir):
    """Signs up `count` users, enrols and activates a TOTP factor for each (playing the
    authenticator), and writes each with its codes for the three steps around now."""
    def make(i):
        email = f"mfa-{run_id}-{i}@bench.example"
        status, body = http_json(port, "POST", "/v1/users", {"email": email, "password": PASSWORD})
        if status != 201:
            raise RuntimeError(f"sign-up answered {status}: {body}")
        access, _ = sign_in(port, email)
        status, body = http_json(port, "POST", "/v1/auth/mfa/totp", {}, token=access)
        if status != 201:
            raise RuntimeError(f"enrolment answered {status}: {body}")
        secret, fid = body["secret"], body["id"]
        step = int(time.time()) // 30 - 1
        status, body = http_json(port, "POST", f"/v1/auth/mfa/totp/{fid}/activate",
                                 {"code": totp_code(secret, step)}, token=access)
        if status != 200:
            raise RuntimeError(f"activation answered {status}: {body}")
        return email, secret

    with ThreadPoolExecutor(max_workers=2 * CORES) as pool:
        users = list(pool.map(make, range(count)))
    now = int(time.time()) // 30
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "mfa_users.txt")
    with open(path, "w") as f:
        for email, secret in users:
            codes = " ".join(totp_code(secret, s) for s in (now, now + 1, now + 2))
            f.write(f"{email} {PASSWORD} {codes}\n")
    return path, users


PASSKEY_OPTIONS = "/v1/auth/passkeys/authentication/options"
PASSKEY_VERIFY = "/v1/auth/passkeys/authentication/verify"


def create_passkeys(server, users_file):
    """Each bench user signs in with the password and registers one passkey (SPEC §5.10:
    registration options, the software authenticator's answer, verify); the
    authenticators, in the order of the users file."""
    with open(users_file) as f:
        emails = [line.split()[0] for line in f if line.strip()]

    def one(email):
        access, _ = sign_in(server.port, email)
        status, body = http_json(server.port, "POST", "/v1/auth/passkeys/registration/options", {}, token=access)
        if status not in (200, 201) or not isinstance(body, dict) or "options" not in body:
            raise RuntimeError(f"registration options answered {status}: {str(body)[:300]}")
        auth = webauthn.Authenticator(PASSKEY_RP_ID, server.origin)
        credential = auth.create(body["options"])
        status, res = http_json(server.port, "POST", "/v1/auth/passkeys/registration/verify",
                                {"challenge_id": body["challenge_id"], "credential": credential, "name": "bench"},
                                token=access)
        if status != 201:
            raise RuntimeError(f"registration verify answered {status}: {str(res)[:300]}")
        return auth

    with ThreadPoolExecutor(max_workers=2 * CORES) as pool:
        return list(pool.map(one, emails))


def passkey_options(port, count, workers=8):
    """`count` usernameless authentication options (POST {} to the options endpoint), each
    a challenge of its own: [(challenge_id, options)], on keep-alive connections."""
    shares = [count // workers + (i < count % workers) for i in range(workers)]

    def fetch(n):
        conn, out = http.client.HTTPConnection("127.0.0.1", port, timeout=30), []
        try:
            for _ in range(n):
                conn.request("POST", PASSKEY_OPTIONS, body="{}", headers={"content-type": "application/json"})
                res = conn.getresponse()
                data = res.read()
                if res.status != 200:
                    raise RuntimeError(f"POST {PASSKEY_OPTIONS} answered {res.status}: {data[:300]!r}")
                body = json.loads(data)
                opts = body["options"]
                out.append((body["challenge_id"], {k: opts[k] for k in ("challenge", "rpId") if k in opts}))
        finally:
            conn.close()
        return out

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [o for share in pool.map(fetch, shares) for o in share]


def passkey_pool(port, auths, phases, workdir, threads):
    """Pre-signed assertions: for each phase (name, count), `count` bodies for
    passkey_login.lua, rounded up to whole rounds of the users. Round k of the pool
    (phases in order) is every user's assertion with sign counter k + 1 past the
    authenticator's. User u's bodies go to wrk thread u mod `threads` (one connection
    each), in round order: a user's assertions are posted one after another, so the
    server sees the counters rise. Signing runs on every core. Writes a file per phase
    and thread (PATH.0, PATH.1, ...); {name: (PATH, bodies)} and the seconds it took."""
    started = time.monotonic()
    users = len(auths)
    rounds = [max(1, -(-count // users)) for _, count in phases]
    total = sum(rounds) * users
    options = passkey_options(port, total)
    fetched = time.monotonic()
    base = [a.sign_count for a in auths]
    jobs = [[] for _ in auths]
    for j, (cid, opts) in enumerate(options):
        u, k = j % users, j // users
        jobs[u].append((cid, opts, base[u] + k + 1))
    states = [a.state() for a in auths]
    if CORES > 1:
        with ProcessPoolExecutor(max_workers=CORES, mp_context=multiprocessing.get_context("fork")) as pool:
            bodies = list(pool.map(webauthn.sign_batch, states, jobs))
    else:
        bodies = [webauthn.sign_batch(st, jb) for st, jb in zip(states, jobs)]
    for a, jb in zip(auths, jobs):
        a.sign_count = jb[-1][2]
    files, k0 = {}, 0
    os.makedirs(workdir, exist_ok=True)
    for (name, _), n in zip(phases, rounds):
        path = os.path.join(workdir, f"passkey_{name}")
        for t in range(threads):
            with open(f"{path}.{t}", "w") as f:
                for k in range(k0, k0 + n):
                    f.writelines(f"{bodies[u][k]}\n" for u in range(t, users, threads))
        files[name] = (path, n * users)
        k0 += n
    log(f"passkey: {total:,} assertions pre-signed in {time.monotonic() - started:.1f} s "
        f"(options {fetched - started:.1f} s, signing {time.monotonic() - fetched:.1f} s)")
    return files, time.monotonic() - started


def passkey_check(server, auth):
    """One usernameless sign-in with the passkey, checked: 200 with an access token."""
    cid, opts = passkey_options(server.port, 1, workers=1)[0]
    status, body = http_json(server.port, "POST", PASSKEY_VERIFY, {"challenge_id": cid, "credential": auth.get(opts)})
    if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
        raise RuntimeError(f"POST {PASSKEY_VERIFY} answered {status}: {str(body)[:300]}")


def passkey_login(server, files, args, label, login):
    """The passkey scenario: usernameless sign-ins with pre-signed ES256 assertions, each
    body posted once, on as many connections as refresh, each its own wrk thread (as the
    mfa scenario runs: a user's assertions keep their order); its rate (answers of 200
    per second) against the password sign-in of this run (`login`, None when it did not
    run). A server that cannot do it gives a row of zeros that says why, and the run goes
    on."""
    scenario = f"passkey: POST {PASSKEY_VERIFY} (ES256, pre-signed)"
    conns = min(args.refresh_conns, args.users)
    try:
        log(f"{label}: passkey: {args.users} users register a passkey")
        auths = create_passkeys(server, files["users"])
        passkey_check(server, auths[0])
        rate = args.passkey_rate
        for attempt in range(2):
            phases = [("warmup", int(args.warmup * rate)), ("measured", int(args.duration * rate))]
            if attempt:
                phases = phases[1:]
            log(f"{label}: passkey: pre-signing for {rate:,.0f} sign-ins/s")
            pool, presign_s = passkey_pool(server.port, auths, phases, os.path.join(server.workdir, "passkey"),
                                           conns)
            if presign_s + args.warmup + args.duration > 240:
                log(f"{label}: passkey: warning: the last assertions answer challenges "
                    f"{presign_s + args.warmup + args.duration:.0f} s old, near their 5 minutes; "
                    f"a smaller --passkey-rate pre-signs fewer")
            log(f"{label}: passkey login")
            if "warmup" in pool:
                wrk_result(wrk(server.port, PASSKEY_VERIFY, "passkey_login.lua", conns, args.warmup, threads=conns,
                               env={"BENCH_PASSKEY": pool["warmup"][0]}))
            r = wrk_result(wrk(server.port, PASSKEY_VERIFY, "passkey_login.lua", conns, args.duration,
                               threads=conns, env={"BENCH_PASSKEY": pool["measured"][0]}))
            if not r["exhausted"]:
                break
            log(f"{label}: passkey: the {pool['measured'][1]:,} assertions ran out ({r['ok_rps']:,.0f}/s); "
                f"again with three times as many")
            rate *= 3
    except Exception as e:  # noqa: BLE001 - reported in the table, the other scenarios go on
        log(f"{label}: passkey: error: {e}")
        empty = {"requests": 0, "rps": 0.0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0,
                 "errors": 1, "error_detail": {"setup": str(e)[:500]}}
        return row(scenario, label, conns, empty, f"FAILED: {str(e)[:200]}")
    if r["errors"]:
        log(f"{label}: passkey: warning: {r['errors']} of {r['requests']} requests failed ({r['error_detail']})")
    sign_ins = r["ok_rps"]
    used = r["requests"]
    pool_note = (f"{len(auths)} passkeys, {pool['measured'][1]:,} assertions pre-signed "
                 f"({used:,} posted{', RAN OUT' if r['exhausted'] else ''})")
    if login and login["rps"]:
        ratio = sign_ins / login["rps"]
        derived = (f"{sign_ins:,.0f} sign-ins/s = {ratio:.1f}× the password sign-in ({fmt_int(login['rps'])}/s, "
                   f"this run; target ≥ 20×); {pool_note}")
    else:
        ratio = None
        derived = f"{sign_ins:,.0f} sign-ins/s; password login not run (add login to --only for the ratio); {pool_note}"
    out = row(scenario, label, conns, r, derived)
    out.update({"passkey_sign_ins_per_s": sign_ins, "passkey_vs_login": ratio,
                "passkey_pool": pool["measured"][1], "passkey_presign_s": presign_s})
    return out


# --- provider sign-in (oauth) ---------------------------------------------------------------
OAUTH_PROVIDER = "mock"
OAUTH_CLIENT_ID = "bench"
# The app's redirect: nobody listens there, the harness reads the code off the Location.
OAUTH_APP = "http://127.0.0.1:9"
OAUTH_REDIRECT_TO = OAUTH_APP + "/cb"
OAUTH_TOKEN = "/auth/v1/token?grant_type=pkce"
OAUTH_COOKIE = "tessera-oauth"
OAUTH_STEPS = ("authorize", "provider form", "callback", "token")


class OidcProvider:
    """oidc-provider-mock (PyPI; `scripts/oidc-provider` installs it and prints its
    executable), the OpenID Connect provider the social sign-in tests use, on a free
    loopback port. Its issuer is the URL it is addressed by: always
    http://127.0.0.1:PORT. It runs the provider's Flask app under uvicorn's WSGI
    interface: one Python process, its requests on a thread pool under one GIL."""

    def __init__(self, exe, workdir):
        self.exe, self.workdir = exe, workdir
        self.proc, self.port, self.issuer, self.logf = None, None, None, None

    @staticmethod
    def find(explicit=None):
        """The executable: --oidc-provider, else what scripts/oidc-provider prints (it
        installs the pinned provider into a venv under target/ on first use)."""
        if explicit:
            return explicit
        out = subprocess.run([os.path.join(ROOT, "scripts", "oidc-provider")], capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout.strip():
            raise RuntimeError(f"scripts/oidc-provider failed ({out.returncode}): {out.stderr.strip()[-300:]}")
        return out.stdout.strip().splitlines()[-1]

    def start(self):
        env = dict(os.environ, NO_COLOR="1", PYTHONWARNINGS="ignore")
        for _ in range(5):
            self.port = free_port()
            self.issuer = f"http://127.0.0.1:{self.port}"
            path = os.path.join(self.workdir, f"oidc-provider-{self.port}.log")
            self.logf = open(path, "wb")
            self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--host", "127.0.0.1"], env=env,
                                         stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    status, _ = http_json(self.port, "GET", "/.well-known/openid-configuration", timeout=1)
                    if status == 200 and self.proc.poll() is None:
                        return self
                except (OSError, ValueError, http.client.HTTPException):
                    pass
                time.sleep(0.05)
            self.stop()
            with open(path, "rb") as f:
                out = f.read().decode("utf-8", "replace")
            if "already in use" not in out:
                raise RuntimeError(f"oidc-provider-mock did not start; its log: {out[-500:]}")
        raise RuntimeError("oidc-provider-mock found no free port in 5 attempts")

    def set_user(self, sub, claims):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("PUT", "/users/" + urllib.parse.quote(sub, safe=""), body=json.dumps(claims),
                         headers={"content-type": "application/json"})
            res = conn.getresponse()
            data = res.read()
            if res.status != 204:
                raise RuntimeError(f"PUT /users/{sub} answered {res.status}: {data[:200]!r}")
        finally:
            conn.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.logf:
            self.logf.close()
            self.logf = None


def oauth_server_env(provider):
    """What the server needs for the mock provider as `mock` (PUBLIC_URL is set where the
    port is known: the callback registered is PUBLIC_URL/auth/v1/callback)."""
    return {
        "EXTERNAL_MOCK_ENABLED": "true",
        "EXTERNAL_MOCK_CLIENT_ID": OAUTH_CLIENT_ID,
        "EXTERNAL_MOCK_SECRET": "bench",
        "EXTERNAL_MOCK_ISSUER": provider.issuer,
        "REDIRECT_URLS": OAUTH_APP,
    }


def _location(res, what):
    to = res.getheader("location")
    if res.status not in (302, 303) or not to:
        raise OAuthStepError(what, res.status)
    return urllib.parse.urlsplit(to)


class OAuthStepError(Exception):
    def __init__(self, step, status):
        super().__init__(f"{step}: {status}")
        self.step, self.status = step, status


def oauth_sign_in(tessera, provider, sub, check=False, mark=None):
    """One sign-in at the provider, PKCE, as a browser and its app would run it, on the
    keep-alive connections `tessera` and `provider` (http.client): GET
    /auth/v1/authorize (keep the tessera-oauth cookie), POST the provider's form at the
    Location with `sub`, GET the callback it redirects to with the cookie, read the code
    off tessera's redirect to the app, POST /auth/v1/token?grant_type=pkce with it and
    the verifier. The four steps' times in s; with `check`, also the token answer.
    `mark`, when given, is called before each step and after the last, outside the
    steps' times."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode({"provider": OAUTH_PROVIDER, "redirect_to": OAUTH_REDIRECT_TO,
                                    "code_challenge": challenge, "code_challenge_method": "s256"})
    steps = []
    t = [0.0]

    def begin():
        if mark:
            mark()
        t[0] = time.perf_counter()

    def done():
        steps.append(time.perf_counter() - t[0])

    begin()
    tessera.request("GET", f"/auth/v1/authorize?{query}")
    res = tessera.getresponse()
    res.read()
    at = _location(res, "authorize")
    cookie = None
    for line in res.headers.get_all("set-cookie") or []:
        if line.startswith(OAUTH_COOKIE + "="):
            cookie = line.split(";", 1)[0][len(OAUTH_COOKIE) + 1:]
    if not cookie:
        raise OAuthStepError("authorize", "no cookie")
    done()
    begin()
    provider.request("POST", f"{at.path}?{at.query}", body=urllib.parse.urlencode({"sub": sub}),
                     headers={"content-type": "application/x-www-form-urlencoded"})
    res = provider.getresponse()
    res.read()
    back = _location(res, "provider form")
    done()
    begin()
    tessera.request("GET", f"{back.path}?{back.query}", headers={"cookie": f"{OAUTH_COOKIE}={cookie}"})
    res = tessera.getresponse()
    res.read()
    landed = _location(res, "callback")
    code = urllib.parse.parse_qs(landed.query).get("code", [None])[0]
    if not code:
        raise OAuthStepError("callback", "no code: " + landed.geturl()[:200])
    done()
    begin()
    tessera.request("POST", OAUTH_TOKEN, body=json.dumps({"auth_code": code, "code_verifier": verifier}),
                    headers={"content-type": "application/json"})
    res = tessera.getresponse()
    body = res.read()
    if res.status != 200:
        raise OAuthStepError("token", f"{res.status} {body[:200]!r}" if check else res.status)
    done()
    if mark:
        mark()
    return (tuple(steps), json.loads(body)) if check else tuple(steps)


def _oauth_thread(conf, subs, out):
    """Sign-ins one after another until conf["end"], each on the next of `subs`; keeps
    those completed inside [conf["measure_from"], conf["end"]]."""
    tessera = provider = None
    i = 0
    while time.monotonic() < conf["end"]:
        if tessera is None:
            tessera = http.client.HTTPConnection("127.0.0.1", conf["tessera_port"], timeout=30)
            provider = http.client.HTTPConnection("127.0.0.1", conf["provider_port"], timeout=30)
        sub = subs[i % len(subs)]
        i += 1
        try:
            steps = oauth_sign_in(tessera, provider, sub)
        except (OAuthStepError, OSError, http.client.HTTPException, ValueError) as e:
            now = time.monotonic()
            if conf["measure_from"] <= now <= conf["end"]:
                key = f"{e.step} {e.status}" if isinstance(e, OAuthStepError) else f"{type(e).__name__}"
                out["errors"][key] = out["errors"].get(key, 0) + 1
            tessera.close()
            provider.close()
            tessera = provider = None
            continue
        now = time.monotonic()
        if conf["measure_from"] <= now <= conf["end"]:
            out["steps"].append(steps)
    if tessera is not None:
        tessera.close()
        provider.close()


def _oauth_process(conf, subs_per_thread):
    """One load process: a thread per share of users; its sign-ins' step times, errors
    and the CPU seconds it spent from the start of the measured window."""
    outs = [{"steps": [], "errors": {}} for _ in subs_per_thread]
    threads = [threading.Thread(target=_oauth_thread, args=(conf, subs, o)) for subs, o in zip(subs_per_thread, outs)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, conf["measure_from"] - time.monotonic()))
    cpu0 = time.process_time()
    for t in threads:
        t.join()
    out = {"steps": [s for o in outs for s in o["steps"]], "errors": {}, "cpu_s": time.process_time() - cpu0}
    for o in outs:
        for k, v in o["errors"].items():
            out["errors"][k] = out["errors"].get(k, 0) + v
    return out


def _percentile(values, q):
    """The nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


def oauth_round(server, provider, subs, conns, warmup_s, duration_s):
    """`conns` sign-ins in flight (as many threads, over CORES processes) for `warmup_s`
    + `duration_s`; the figures of the last `duration_s`, with each process's CPU and
    the server's and the provider's over that window."""
    procs = max(1, min(CORES, conns))
    shares = [[] for _ in range(conns)]
    for j, sub in enumerate(subs):
        shares[j % conns].append(sub)
    shares = [s or subs for s in shares]
    start = time.monotonic() + 0.3
    conf = {"tessera_port": server.port, "provider_port": provider.port,
            "measure_from": start + warmup_s, "end": start + warmup_s + duration_s}
    per_proc = [shares[p::procs] for p in range(procs)]
    with ProcessPoolExecutor(max_workers=procs, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(_oauth_process, conf, share) for share in per_proc]
        time.sleep(max(0.0, conf["measure_from"] - time.monotonic()))
        cpu_server, cpu_provider = cpu_ns(server.proc.pid), cpu_ns(provider.proc.pid)
        time.sleep(max(0.0, conf["end"] - time.monotonic()))
        cpu_server, cpu_provider = cpu_ns(server.proc.pid) - cpu_server, cpu_ns(provider.proc.pid) - cpu_provider
        outs = [f.result() for f in futures]
    steps = [s for o in outs for s in o["steps"]]
    errors = {}
    for o in outs:
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    n = len(steps)
    if not n:
        raise RuntimeError(f"no sign-in completed in {duration_s} s; errors: {errors}")
    totals = [sum(s) * 1000 for s in steps]
    tessera_part = [(s[2] + s[3]) * 1000 for s in steps]
    r = {
        "requests": n,
        "rps": n / duration_s,
        "p50_ms": _percentile(totals, 50),
        "p90_ms": _percentile(totals, 90),
        "p99_ms": _percentile(totals, 99),
        "max_ms": max(totals),
        "errors": sum(errors.values()),
        "error_detail": errors,
        "tessera_part_p50_ms": _percentile(tessera_part, 50),
        "tessera_part_p99_ms": _percentile(tessera_part, 99),
        "step_p50_ms": {name: _percentile([s[k] * 1000 for s in steps], 50) for k, name in enumerate(OAUTH_STEPS)},
        "step_p99_ms": {name: _percentile([s[k] * 1000 for s in steps], 99) for k, name in enumerate(OAUTH_STEPS)},
        "cpu_ms_per_sign_in": {"tessera": cpu_server / 1e6 / n, "provider": cpu_provider / 1e6 / n,
                               "load generator": sum(o["cpu_s"] for o in outs) * 1000 / n},
    }
    return r


def oauth_alone(server, provider, subs, n=20):
    """Sign-ins one after another, nothing else running (after the rounds: the users are
    known): each step's time, the median of `n`, and the CPU time tessera and the
    provider spent on each (schedstat, read 5 ms after each step, as mfa_step_cost
    does), per sign-in."""
    tessera = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    at_provider = http.client.HTTPConnection("127.0.0.1", provider.port, timeout=30)
    walls, parts = [[] for _ in OAUTH_STEPS], []
    cpu = {"tessera": [0.0] * len(OAUTH_STEPS), "provider": [0.0] * len(OAUTH_STEPS)}
    try:
        for i in range(n):
            marks = []

            def mark():
                time.sleep(0.005)
                marks.append((cpu_ns(server.proc.pid), cpu_ns(provider.proc.pid)))

            steps = oauth_sign_in(tessera, at_provider, subs[i % len(subs)], mark=mark)
            for k, step in enumerate(steps):
                walls[k].append(step * 1000)
                cpu["tessera"][k] += (marks[k + 1][0] - marks[k][0]) / 1e6 / n
                cpu["provider"][k] += (marks[k + 1][1] - marks[k][1]) / 1e6 / n
            parts.append((steps[2] + steps[3]) * 1000)
    finally:
        tessera.close()
        at_provider.close()
    return {"p50_ms": {name: statistics.median(walls[k]) for k, name in enumerate(OAUTH_STEPS)},
            "tessera_part_p50_ms": statistics.median(parts),
            "cpu_ms": {who: dict(zip(OAUTH_STEPS, v)) for who, v in cpu.items()}}


def oauth_login(server, provider, provider_error, args, run_id, label, login):
    """The oauth scenario: whole sign-ins at the mock provider, PKCE (four requests:
    tessera's authorize, the provider's form, tessera's callback, tessera's token
    exchange), `args.oauth_conns` in flight from Python load processes (wrk cannot carry
    a cookie and a code across two servers), ROUNDS rounds after a warm-up, of users
    who signed up (their first sign-in) before; the median round, then sign-ins one at a
    time (oauth_alone). Its rate against the password sign-in of this run (`login`, None when it did
    not run). A server or provider that cannot do it gives a row of zeros that says why,
    and the run goes on."""
    scenario = "oauth: provider sign-in, PKCE (authorize, provider form, callback, token)"
    conns = args.oauth_conns
    try:
        if provider is None:
            raise RuntimeError(provider_error or "the provider did not start")
        subs = [f"oauth-{run_id}-{i}" for i in range(args.users)]
        log(f"{label}: oauth: {len(subs)} users at the provider")
        for sub in subs:
            provider.set_user(sub, {"email": f"{sub}@bench.example", "email_verified": True, "name": "Bench User"})
        tessera = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        at_provider = http.client.HTTPConnection("127.0.0.1", provider.port, timeout=30)
        try:
            _, session = oauth_sign_in(tessera, at_provider, subs[0], check=True)
        finally:
            tessera.close()
            at_provider.close()
        user = session.get("user") or {}
        if not session.get("access_token") or user.get("email") != f"{subs[0]}@bench.example":
            raise RuntimeError(f"the PKCE exchange gave no session for {subs[0]}: {str(session)[:300]}")
        # Every user's first sign-in creates its account and identity: done here, so that
        # the rounds measure returning users only.
        log(f"{label}: oauth: the first sign-in (sign-up) of each user")

        def first(share):
            t = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            p = http.client.HTTPConnection("127.0.0.1", provider.port, timeout=30)
            try:
                for sub in share:
                    oauth_sign_in(t, p, sub)
            finally:
                t.close()
                p.close()

        with ThreadPoolExecutor(max_workers=conns) as pool:
            list(pool.map(first, [subs[1:][k::conns] for k in range(conns)]))
        runs = []
        for i in range(ROUNDS):
            log(f"{label}: oauth, round {i + 1}")
            runs.append(oauth_round(server, provider, subs, conns, args.warmup if i == 0 else 0, args.duration))
        log(f"{label}: oauth: 20 sign-ins one after another")
        alone = oauth_alone(server, provider, subs)
    except Exception as e:  # noqa: BLE001 - reported in the table, the other scenarios go on
        log(f"{label}: oauth: error: {e}")
        empty = {"requests": 0, "rps": 0.0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0,
                 "errors": 1, "error_detail": {"setup": str(e)[:500]}}
        return row(scenario, label, conns, empty, f"FAILED: {str(e)[:200]}")
    r = median_run(runs)
    if r["errors"]:
        log(f"{label}: oauth: warning: {r['errors']} sign-ins failed ({r['error_detail']})")
    cpu, t_cpu, p_cpu = r["cpu_ms_per_sign_in"], alone["cpu_ms"]["tessera"], alone["cpu_ms"]["provider"]
    derived = (f"sign-ins/s, median of {len(runs)}: " + ", ".join(fmt_int(x["rps"]) for x in runs)
               + f"; tessera's part (callback + token) p50 {r['tessera_part_p50_ms']:.1f} / p99 "
               f"{r['tessera_part_p99_ms']:.1f} ms; p50 ms by step: "
               + ", ".join(f"{k} {v:.2f}" for k, v in r["step_p50_ms"].items())
               + f"; CPU per sign-in: provider {cpu['provider']:.1f} ms "
               f"(busy {cpu['provider'] * r['rps'] / 10:.0f}% of its one core: it sets the pace), tessera "
               f"{cpu['tessera']:.2f} ms, load generator {cpu['load generator']:.1f} ms. One at a time, p50 ms: "
               + ", ".join(f"{k} {v:.2f}" for k, v in alone["p50_ms"].items())
               + f" (tessera's part {alone['tessera_part_p50_ms']:.2f}; the callback waits on the provider's "
               f"token endpoint), tessera CPU " + ", ".join(f"{k} {t_cpu[k]:.2f}" for k in ("authorize", "callback", "token"))
               + f", provider CPU form {p_cpu['provider form']:.1f} + token endpoint {p_cpu['callback']:.1f}")
    if login and login["rps"]:
        ratio = r["rps"] / login["rps"]
        derived += f"; {ratio:.2f}× the password sign-in ({fmt_int(login['rps'])}/s, this run)"
    else:
        ratio = None
    out = row(scenario, label, conns, r, derived)
    out.update({"oauth_sign_ins_per_s": r["rps"], "oauth_vs_login": ratio,
                "oauth_rounds_rps": [x["rps"] for x in runs], "oauth_alone": alone})
    return out


# --- tessera's provider (oauth_code, oauth_refresh) ------------------------------------------
OP_ADMIN = "op-admin@bench.example"
# The client's redirect: nobody listens there, the code is read off the Location.
OP_REDIRECT = OAUTH_APP + "/cb"
OP_SCOPE = "openid offline_access"
OP_SESSION_COOKIE = "tessera_op"
OP_FLOW_COOKIE = "tessera_op_flow"


class OpClient:
    """A confidential client of tessera's provider (client_secret_basic), registered by an
    admin, and the browsers (bench users signed in at the provider's pages, consent
    given) whose sessions it gets codes for."""

    def __init__(self, port, client_id, secret):
        self.port, self.client_id, self.secret = port, client_id, secret
        self.algorithm = None  # the ID token's, once one is checked
        # RFC 6749 §2.3.1: each part form-encoded, then Basic.
        pair = urllib.parse.quote(client_id, safe="") + ":" + urllib.parse.quote(secret, safe="")
        self.basic = base64.b64encode(pair.encode()).decode()
        self.browsers = []  # (tessera_op cookie, email)

    def authorize_path(self, challenge):
        return "/oauth/authorize?" + urllib.parse.urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": OP_REDIRECT, "scope": OP_SCOPE,
            "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}, quote_via=urllib.parse.quote)

    def token(self, conn, form):
        """POST /oauth/token with the client's Basic credentials; (status, JSON or None, raw)."""
        conn.request("POST", "/oauth/token", body=urllib.parse.urlencode(form),
                     headers={"content-type": "application/x-www-form-urlencoded",
                              "authorization": f"Basic {self.basic}"})
        res = conn.getresponse()
        raw = res.read().decode("utf-8", "replace")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return res.status, body, raw

    def code(self, conn, cookie, challenge):
        """A browser signed in, consent given: GET /oauth/authorize answers a 303 straight
        to the redirect URI with a code."""
        conn.request("GET", self.authorize_path(challenge), headers={"cookie": f"{OP_SESSION_COOKIE}={cookie}"})
        res = conn.getresponse()
        res.read()
        to = res.getheader("location") or ""
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(to).query).get("code", [None])[0]
        if res.status != 303 or not to.startswith(OP_REDIRECT + "?") or not code:
            raise RuntimeError(f"GET /oauth/authorize with a session answered {res.status}, Location {to[:200]!r}")
        return code

    def exchange(self, conn, cookie):
        """A code for this browser, exchanged: the token answer (JSON)."""
        verifier, challenge = pkce_pair()
        code = self.code(conn, cookie, challenge)
        status, body, raw = self.token(conn, {"grant_type": "authorization_code", "code": code,
                                              "code_verifier": verifier, "redirect_uri": OP_REDIRECT})
        if status != 200 or not isinstance(body, dict) or not body.get("refresh_token"):
            raise RuntimeError(f"POST /oauth/token (authorization_code) answered {status}: {raw[:300]}")
        return body


def pkce_pair():
    """A PKCE verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _cookies(res):
    """The name=value pairs a response sets."""
    out = {}
    for line in res.headers.get_all("set-cookie") or []:
        name, _, value = line.split(";", 1)[0].partition("=")
        out[name.strip()] = value.strip()
    return out


def _hidden(html, name):
    m = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), html)
    if not m:
        raise RuntimeError(f"no {name} in the page: {html[:300]!r}")
    return m.group(1)


def op_browser(op, email):
    """`email` signs in at the provider's pages as a browser would, for a request of
    `op`: GET /oauth/authorize (303 to the sign-in page), the sign-in page (its flow
    cookie and form token), POST the form (303 to consent, the tessera_op session
    cookie), the consent page, POST approve (303 to the redirect URI with a code). The
    session cookie, the code and its verifier."""
    verifier, challenge = pkce_pair()
    conn = http.client.HTTPConnection("127.0.0.1", op.port, timeout=30)
    form_headers = {"content-type": "application/x-www-form-urlencoded"}

    def go(method, path, cookies, expect, body=None):
        headers = dict(form_headers) if body is not None else {}
        if cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        conn.request(method, path, body=urllib.parse.urlencode(body) if body is not None else None, headers=headers)
        res = conn.getresponse()
        text = res.read().decode("utf-8", "replace")
        if res.status != expect:
            raise RuntimeError(f"{method} {path.split('?')[0]} answered {res.status} (not {expect}): {text[:300]!r}")
        return res, text

    try:
        res, _ = go("GET", op.authorize_path(challenge), {}, 303)
        at = urllib.parse.urlsplit(res.getheader("location") or "")
        if at.path != "/oauth/sign-in":
            raise RuntimeError(f"GET /oauth/authorize sent the browser to {at.geturl()[:200]!r}, not the sign-in page")
        cookies = {}
        res, page = go("GET", f"{at.path}?{at.query}", cookies, 200)
        cookies.update(_cookies(res))
        if OP_FLOW_COOKIE not in cookies:
            raise RuntimeError(f"the sign-in page set no {OP_FLOW_COOKIE} cookie")
        aid = _hidden(page, "authorization_id")
        res, _ = go("POST", "/oauth/sign-in", cookies, 303, {"authorization_id": aid, "csrf": _hidden(page, "csrf"),
                                                             "email": email, "password": PASSWORD})
        cookies.update(_cookies(res))
        to = urllib.parse.urlsplit(res.getheader("location") or "")
        if OP_SESSION_COOKIE not in cookies or to.path != "/oauth/consent":
            raise RuntimeError(f"the sign-in set cookies {sorted(cookies)} and went to {to.geturl()[:200]!r}")
        res, page = go("GET", f"{to.path}?{to.query}", cookies, 200)
        res, _ = go("POST", "/oauth/consent", cookies, 303, {"authorization_id": _hidden(page, "authorization_id"),
                                                             "csrf": _hidden(page, "csrf"), "decision": "approve"})
        to = res.getheader("location") or ""
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(to).query).get("code", [None])[0]
        if not to.startswith(OP_REDIRECT + "?") or not code:
            raise RuntimeError(f"the consent sent the browser to {to[:200]!r}, not the redirect URI with a code")
        return cookies[OP_SESSION_COOKIE], code, verifier
    finally:
        conn.close()


def _jwt_part(token, k):
    part = token.split(".")[k]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def op_setup(server, files, args, workdir, label):
    """An admin (`tessera admin create`, beside the running server: FIRST_ADMIN_* would
    hash at start-up, inside the start-up time), a confidential client registered at
    POST /v1/admin/oauth/clients, one browser per connection of the code scenario
    (the first bench users sign in at the provider's pages and consent), the first
    code exchanged and its answer checked (ID token signed by the issuer PUBLIC_URL),
    and the refresh scenario's chains: one client session per bench user for the
    measured run and one for its warm-up, each from a code and its exchange. The client
    and the files' paths."""
    port = server.port
    out = subprocess.run([args.binary, "admin", "create", "--email", OP_ADMIN, "--password-stdin"],
                         input=PASSWORD + "\n", env=server.env, cwd=server.workdir, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"tessera admin create failed ({out.returncode}): {out.stderr.strip()[-300:]}")
    admin, _ = sign_in(port, OP_ADMIN)
    status, body = http_json(port, "POST", "/v1/admin/oauth/clients",
                             {"client_name": "bench", "redirect_uris": [OP_REDIRECT]}, token=admin)
    if status != 201 or not isinstance(body, dict) or not body.get("client_secret"):
        raise RuntimeError(f"POST /v1/admin/oauth/clients answered {status}: {str(body)[:300]}")
    op = OpClient(port, body["client_id"], body["client_secret"])
    with open(files["users"]) as f:
        emails = [line.split()[0] for line in f if line.strip()]
    conns = min(args.refresh_conns, len(emails))
    log(f"{label}: oauth: {conns} browsers sign in at the provider's pages and consent")
    with ThreadPoolExecutor(max_workers=2 * CORES) as pool:
        signed = list(pool.map(lambda e: op_browser(op, e), emails[:conns]))
    op.browsers = [cookie for cookie, _, _ in signed]
    # The first code, exchanged and checked.
    _, code, verifier = signed[0]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        status, tokens, raw = op.token(conn, {"grant_type": "authorization_code", "code": code,
                                              "code_verifier": verifier, "redirect_uri": OP_REDIRECT})
    finally:
        conn.close()
    if status != 200 or not isinstance(tokens, dict):
        raise RuntimeError(f"POST /oauth/token (authorization_code) answered {status}: {raw[:300]}")
    problems = [f"no {k}" for k in ("access_token", "id_token", "refresh_token") if not tokens.get(k)]
    if not problems:
        issuer = f"http://127.0.0.1:{port}"
        head, claims = _jwt_part(tokens["id_token"], 0), _jwt_part(tokens["id_token"], 1)
        if claims.get("iss") != issuer or claims.get("aud") != op.client_id:
            problems.append(f"ID token iss {claims.get('iss')!r} aud {claims.get('aud')!r}, not {issuer!r} "
                            f"and the client")
        op.algorithm = head.get("alg")
    if problems:
        raise RuntimeError(f"the code exchange's answer: {', '.join(problems)}: {raw[:300]}")
    # Two chains per bench user, over the browsers: the measured run's, the warm-up's.
    log(f"{label}: oauth: {2 * len(emails)} client sessions (code and exchange) for the refresh chains")

    def chains(share):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            return [op.exchange(conn, op.browsers[i % conns])["refresh_token"] for i in share]
        finally:
            conn.close()

    n, workers = 2 * len(emails), 2 * CORES
    with ThreadPoolExecutor(max_workers=workers) as pool:
        tokens = [t for share in pool.map(chains, [range(k, n, workers) for k in range(workers)]) for t in share]
    d = os.path.join(workdir, "oauth")
    os.makedirs(d, exist_ok=True)
    paths = {name: os.path.join(d, f"{name}.txt") for name in ("browsers", "refresh", "refresh_warmup")}
    with open(paths["browsers"], "w") as f:
        for cookie in op.browsers:
            f.write(f"{cookie} {' '.join(pkce_pair())}\n")
    with open(paths["refresh"], "w") as f:
        f.writelines(f"{t}\n" for t in tokens[0::2])
    with open(paths["refresh_warmup"], "w") as f:
        f.writelines(f"{t}\n" for t in tokens[1::2])
    return op, paths


def _failed_row(scenario, label, conns, e):
    empty = {"requests": 0, "rps": 0.0, "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0,
             "errors": 1, "error_detail": {"setup": str(e)[:500]}}
    return row(scenario, label, conns, empty, f"FAILED: {str(e)[:200]}")


OP_CODE_SCENARIO = "oauth code: GET /oauth/authorize + POST /oauth/token (two requests, confidential client)"
OP_REFRESH_SCENARIO = "oauth refresh: POST /oauth/token grant_type=refresh_token (rotation, confidential client)"


def op_scenarios(server, files, args, workdir, label, native, want):
    """tessera's provider under load, for a confidential client (issue 31): the refresh
    scenario (`oauth_refresh`: refresh.lua's rotation on /oauth/token with the client's Basic
    credentials, as many connections
    and chains as refresh; its ratio to the native refresh of this run, `native`, None
    when it did not run), then the code scenario (`oauth_code`: each connection a browser
    signed in, consent given, asking GET /oauth/authorize for a code and exchanging it at
    POST /oauth/token, HTTP Basic and PKCE, one wrk thread per connection as the mfa
    scenario runs; each exchange opens a client session and signs an access and an ID
    token; exchanges per second, each kind's latencies, tessera's CPU per round). A server that cannot do it gives rows
    of zeros that say why, and the run goes on."""
    conns = args.refresh_conns
    names = [n for n in ("oauth_code", "oauth_refresh") if want(n)]
    scenarios = {"oauth_code": OP_CODE_SCENARIO, "oauth_refresh": OP_REFRESH_SCENARIO}
    try:
        op, paths = op_setup(server, files, args, workdir, label)
    except Exception as e:  # noqa: BLE001 - reported in the table, the other scenarios go on
        log(f"{label}: oauth: error: {e}")
        return [_failed_row(scenarios[n], label, conns, e) for n in names]
    env = {"BENCH_OAUTH_CLIENT": op.client_id, "BENCH_OAUTH_BASIC": op.basic,
           "BENCH_OAUTH_REDIRECT": urllib.parse.quote(OP_REDIRECT, safe="")}
    rows = []
    if "oauth_refresh" in names:
        # First: nearer the native refresh, its reference.
        log(f"{label}: oauth refresh")
        try:
            r = run_wrk(server.port, "/oauth/token", "refresh.lua", conns, args,
                        env={**env, "BENCH_REFRESH": paths["refresh"]},
                        warmup_env={**env, "BENCH_REFRESH": paths["refresh_warmup"]})
        except Exception as e:  # noqa: BLE001
            log(f"{label}: oauth refresh: error: {e}")
            rows.append(_failed_row(OP_REFRESH_SCENARIO, label, conns, e))
        else:
            rows.append(_rotation_row(OP_REFRESH_SCENARIO, label, conns, r, native, "oauth refresh"))
    if "oauth_code" in names:
        log(f"{label}: oauth code")
        conns_code = len(op.browsers)
        code_env = {**env, "BENCH_OAUTH_BROWSERS": paths["browsers"]}
        try:
            if args.warmup > 0:
                wrk_result(wrk(server.port, "/oauth/authorize", "oauth_code.lua", conns_code, args.warmup,
                               threads=conns_code, env=code_env))
            cpu = cpu_ns(server.proc.pid)
            r = wrk_result(wrk(server.port, "/oauth/authorize", "oauth_code.lua", conns_code, args.duration,
                               threads=conns_code, env=code_env))
            cpu = cpu_ns(server.proc.pid) - cpu
            token, authorize = r["kinds"]["token"], r["kinds"]["authorize"]
            cpu_ms = cpu / 1e6 / max(1, token["count"])
        except Exception as e:  # noqa: BLE001
            log(f"{label}: oauth code: error: {e}")
            rows.append(_failed_row(OP_CODE_SCENARIO, label, conns_code, e))
        else:
            if r["errors"]:
                log(f"{label}: oauth code: warning: {r['errors']} of {r['requests']} requests failed "
                    f"({r['error_detail']})")
            derived = (f"{token['rps']:,.0f} exchanges/s; POST /oauth/token p50 {token['p50_ms']:.2f} / p99 "
                       f"{token['p99_ms']:.2f} ms, GET /oauth/authorize p50 {authorize['p50_ms']:.2f} / p99 "
                       f"{authorize['p99_ms']:.2f} ms (as measured; the columns are wrk's, both kinds); tessera "
                       f"CPU {cpu_ms:.2f} ms per authorize + exchange; {conns_code} browsers, ID token {op.algorithm}")
            out = row(OP_CODE_SCENARIO, label, conns_code, r, derived)
            out.update({"oauth_exchanges_per_s": token["rps"], "oauth_exchange_p50_ms": token["p50_ms"],
                        "oauth_exchange_p99_ms": token["p99_ms"], "oauth_authorize_p50_ms": authorize["p50_ms"],
                        "oauth_authorize_p99_ms": authorize["p99_ms"], "oauth_cpu_ms_per_exchange": cpu_ms})
            rows.append(out)
    return rows


def cpu_ns(pid):
    """CPU time a process has used so far, in ns, summed over its threads (schedstat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return total


def mfa_step_cost(server, users):
    """Each step of a sign-in alone, one after another on an idle server: the server's
    CPU time for all the password steps and all the TOTP steps, (password ms, TOTP ms)
    per sign-in."""
    port, pid = server.port, server.proc.pid
    first = second = 0
    for email, secret in users:
        before = cpu_ns(pid)
        status, body = http_json(port, "POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
        time.sleep(0.005)  # let the hashing thread's accounting settle
        middle = cpu_ns(pid)
        if status != 200 or not body.get("mfa_token"):
            raise RuntimeError(f"step one answered {status}: {body}")
        code = totp_code(secret, int(time.time()) // 30 + 1)
        status, body = http_json(port, "POST", "/v1/auth/mfa/verify", {"mfa_token": body["mfa_token"], "code": code})
        time.sleep(0.005)
        after = cpu_ns(pid)
        if status != 200:
            raise RuntimeError(f"step two answered {status}: {body}")
        first += middle - before
        second += after - middle
    return first / len(users) / 1e6, second / len(users) / 1e6


def me_rounds(server, tokens, args, label):
    """ROUNDS alternating floor and /me runs; (floors, mes, ratios)."""
    floors, mes, ratios = [], [], []
    for i in range(ROUNDS):
        log(f"{label}: floor, round {i + 1}")
        floors.append(run_wrk(server.port, "/health", "plain.lua", 64, args, warmup=i == 0))
        log(f"{label}: me, round {i + 1}")
        mes.append(run_wrk(server.port, "/v1/auth/me", "me.lua", 64, args, warmup=i == 0,
                           env={"BENCH_TOKENS": tokens}))
        ratios.append(mes[-1]["rps"] / floors[-1]["rps"] if floors[-1]["rps"] else 0)
    return floors, mes, ratios


def metrics_cost(args, workdir, run_id, label):
    """/me against the floor on a server that counts nothing (METRICS_ENABLED=false)."""
    url = f"sqlite://{workdir}/bench-no-metrics.db"
    log(f"{label}: starting tessera with METRICS_ENABLED=false")
    server = Server(args.binary, url, workdir, {"METRICS_ENABLED": "false"}).start()
    try:
        time.sleep(1)
        files = create_users(server.port, args.users, run_id + "-nm", workdir + "/nm")
        floors, mes, ratios = me_rounds(server, files["tokens"], args, f"{label} (no metrics)")
        ratio = statistics.median(ratios)
        r = row(f"me, METRICS_ENABLED=false ({args.users} users)", label, 64, median_run(mes),
                f"{ratio:.0%} of its floor {fmt_int(median_run(floors)['rps'])} (rounds: "
                + ", ".join(f"{x:.0%}" for x in ratios) + ")")
        r["me_over_floor"] = ratio
        r["me_over_floor_rounds"] = ratios
        return [r]
    finally:
        server.stop()


def pii_cost(plain, files, pii_url, args, workdir, run_id, label):
    """PII encryption's cost: the running server (plaintext) and one with PII_ENCRYPTION_KEY
    on a database of its own, side by side and alternating, so both see the same drift:
    /me against each one's floor, sign-in and sign-up."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    log(f"{label}: starting tessera with PII_ENCRYPTION_KEY")
    enc = Server(args.binary, pii_url, workdir, {"PII_ENCRYPTION_KEY": f"bench:{key}"}).start()
    try:
        time.sleep(1)
        enc_files = create_users(enc.port, args.users, run_id + "-pii", os.path.join(workdir, "pii"))
        servers = {"plain": (plain, files), "encrypted": (enc, enc_files)}
        ratios, mes = {k: [] for k in servers}, {k: [] for k in servers}
        for i in range(ROUNDS):
            for name, (srv, f) in servers.items():
                log(f"{label}: pii, {name}, floor and me, round {i + 1}")
                floor = run_wrk(srv.port, "/health", "plain.lua", 64, args, warmup=i == 0)
                me = run_wrk(srv.port, "/v1/auth/me", "me.lua", 64, args, warmup=i == 0,
                             env={"BENCH_TOKENS": f["tokens"]})
                ratios[name].append(me["rps"] / floor["rps"] if floor["rps"] else 0)
                mes[name].append(me)
        conns = 2 * CORES
        logins, signups = {k: [] for k in servers}, {k: [] for k in servers}
        for i in range(2):
            for name, (srv, f) in servers.items():
                log(f"{label}: pii, {name}, login and register, round {i + 1}")
                logins[name].append(run_wrk(srv.port, "/v1/auth/login", "login.lua", conns, args,
                                            env={"BENCH_USERS": f["users"]})["rps"])
                signups[name].append(run_wrk(srv.port, "/v1/users", "register.lua", conns, args,
                                             env={"BENCH_RUN_ID": f"{run_id}-pii-{name}-{i}",
                                                  "BENCH_PASSWORD": PASSWORD})["rps"])
        med = statistics.median
        me_change = med(ratios["encrypted"]) / med(ratios["plain"]) - 1
        login_change = med(logins["encrypted"]) / med(logins["plain"]) - 1
        signup_change = med(signups["encrypted"]) / med(signups["plain"]) - 1
        r = row("pii: GET /v1/auth/me with PII_ENCRYPTION_KEY (then login, register)", label, f"64 / {conns}",
                median_run(mes["encrypted"]),
                (f"me/floor {med(ratios['encrypted']):.0%} vs {med(ratios['plain']):.0%} ({me_change:+.1%}; "
                         f"rounds " + ", ".join(f"{a:.0%}/{b:.0%}" for a, b in zip(ratios["encrypted"], ratios["plain"]))
                         + f"); login {med(logins['encrypted']):.1f} vs {med(logins['plain']):.1f}/s "
                         f"({login_change:+.1%}); register {med(signups['encrypted']):.1f} vs "
                         f"{med(signups['plain']):.1f}/s ({signup_change:+.1%}), encrypted vs plain"))
        r.update({"pii_me_change": me_change, "pii_login_change": login_change, "pii_signup_change": signup_change,
                  "pii_me_ratios": ratios, "pii_logins": logins, "pii_signups": signups})
        return [r]
    finally:
        enc.stop()


def flood(server, files, args, run_id, label, total=1_000_000):
    """A million distinct addresses posted to password-reset (each a key of the
    per-address limit, RATE_LIMIT_MEMORY_KEYS bounding them), with sign-ins measured
    meanwhile; the server's RSS throughout."""
    log(f"{label}: flood of {total:,} password-reset addresses")
    sent, chunks, logins = 0, 0, []
    with RssSampler(server.proc.pid) as rss:
        while sent < total:
            chunks += 1
            env = {"BENCH_RUN_ID": f"{run_id}-{chunks}"}
            flood_proc = wrk(server.port, "/v1/auth/password-reset", "flood.lua", 2 * CORES, 20, env=env)
            login_proc = wrk(server.port, "/v1/auth/login", "login.lua", 1, 19, threads=1,
                             env={"BENCH_USERS": files["users"]})
            logins.append(wrk_result(login_proc))
            r = wrk_result(flood_proc)
            sent += r["requests"]
            log(f"{label}: flood {sent:,} / {total:,} ({r['rps']:.0f}/s), RSS {rss.peak / 1024:.1f} MiB peak")
    p99 = statistics.median(l["p99_ms"] for l in logins)
    r = row(f"flood: POST /v1/auth/password-reset, {sent:,} addresses", label, 2 * CORES,
            {**r, "requests": sent},
            f"RSS peak {rss.peak / 1024:.1f} MiB, {server.rss_mib():.1f} MiB after; login p99 meanwhile "
            f"{p99:.1f} ms (median of {len(logins)} 19 s runs)")
    r["flood_rss_peak_mib"] = rss.peak / 1024
    r["flood_login_p99_ms"] = p99
    return [r]


# --- hooks and webhooks (issue 32) -------------------------------------------------------------
def whsec():
    """A Standard Webhooks secret as the server reads it: v1,whsec_<base64 of 32 random bytes>."""
    return "v1," + "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Receiver:
    """A loopback HTTP receiver run by the harness (ThreadingHTTPServer, a thread per
    connection, HTTP/1.1 keep-alive, Nagle off): `claims` answers a custom access token
    hook call with 200 {"claims": {...the request's claims..., "plan": "pro"}}; `events`
    answers an event webhook with 204 and records each delivery (the time it was
    answered, its webhook-id, the event's type and user_id). Signatures are not checked
    (the tests do that, scripts/hook-receiver). While `gate` is clear an event is held
    up to `hold_s` (under the server's 5 s client timeout) before it is answered, so
    that the server's one sender stalls and a backlog builds up."""

    def __init__(self, kind, hold_s=4.0):
        self.kind, self.hold_s = kind, hold_s
        self.lock = threading.Lock()
        self.calls, self.bad = 0, 0
        self.deliveries = []  # (monotonic time answered, webhook-id, type, user_id)
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver._answer(self, raw)

            def log_message(self, *a):
                pass

        class Httpd(http.server.ThreadingHTTPServer):
            request_queue_size = 128
            daemon_threads = True

        self.httpd = Httpd(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self):
        with self.lock:
            return self.calls

    def _answer(self, h, raw):
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if self.kind == "claims":
            if not isinstance(body, dict) or not isinstance(body.get("claims"), dict):
                with self.lock:
                    self.bad += 1
                h.send_response(400)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            out = json.dumps({"claims": {**body["claims"], "plan": "pro"}}).encode()
            with self.lock:
                self.calls += 1
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(out)))
            h.end_headers()
            h.wfile.write(out)
            return
        if not self.gate.is_set():
            self.gate.wait(self.hold_s)
        data = body.get("data") if isinstance(body, dict) else None
        event = (time.monotonic(), h.headers.get("webhook-id"), body.get("type") if isinstance(body, dict) else None,
                 data.get("user_id") if isinstance(data, dict) else None)
        with self.lock:
            self.calls += 1
            self.deliveries.append(event)
        h.send_response(204)
        h.end_headers()


HOOK_LOGIN_SCENARIO = "hook login: POST /v1/auth/login, custom access token hook (loopback receiver)"


def hook_login(server, files, args, workdir, run_id, label, new_db):
    """The hook_login scenario: password sign-ins (login.lua) on a second server started
    with the custom access token hook on, calling a loopback Receiver of the harness
    that adds "plan": "pro" to the claims, on a database of its own with its own users.
    The plain sign-in on the running server and the hooked one alternate for ROUNDS
    rounds, so that both see the same drift of the machine; the row is the median hooked
    round, the ratio the median of the rounds' own hooked/plain ratios; beside it each
    server's CPU time per sign-in over the measured runs, and the receiver's per call
    (the harness's own CPU time: it does nothing else meanwhile). Checked at the
    end: a token's payload carries plan == "pro", and the receiver was called at least
    once per sign-in wrk counted as successful in the measured runs. A server that
    cannot do it gives a row of zeros that says why, and the run goes on."""
    conns = 2 * CORES
    receiver = Receiver("claims").start()
    hooked = None
    try:
        hooked = Server(args.binary, new_db("hook"), workdir, {
            "HOOK_CUSTOM_ACCESS_TOKEN_ENABLED": "true",
            "HOOK_CUSTOM_ACCESS_TOKEN_URI": f"http://127.0.0.1:{receiver.port}/claims",
            "HOOK_CUSTOM_ACCESS_TOKEN_SECRETS": whsec(),
        })
        log(f"{label}: hook login: starting tessera with the custom access token hook "
            f"(receiver on port {receiver.port})")
        hooked.start()
        time.sleep(1)
        log(f"{label}: hook login: creating {args.users} users")
        hook_files = create_users(hooked.port, args.users, run_id + "-hook", os.path.join(workdir, "hook"))
        with open(hook_files["users"]) as f:
            email = f.readline().split()[0]
        plain_runs, hook_runs, ratios = [], [], []
        calls, ok, plain_ok = 0, 0, 0
        # CPU over the measured runs: each server's (schedstat), and the harness's own,
        # which is the receiver's (the harness does nothing else meanwhile).
        cpu = {"plain": 0, "hooked": 0, "receiver": 0.0}
        for i in range(ROUNDS):
            log(f"{label}: hook login, plain, round {i + 1}")
            if i == 0 and args.warmup > 0:
                wrk_result(wrk(server.port, "/v1/auth/login", "login.lua", conns, args.warmup,
                               env={"BENCH_USERS": files["users"]}))
            c0 = cpu_ns(server.proc.pid)
            p = wrk_result(wrk(server.port, "/v1/auth/login", "login.lua", conns, args.duration,
                               env={"BENCH_USERS": files["users"]}))
            cpu["plain"] += cpu_ns(server.proc.pid) - c0
            plain_ok += p["requests"] - p["errors"]
            plain_runs.append(p)
            log(f"{label}: hook login, hooked, round {i + 1}")
            if i == 0 and args.warmup > 0:
                wrk_result(wrk(hooked.port, "/v1/auth/login", "login.lua", conns, args.warmup,
                               env={"BENCH_USERS": hook_files["users"]}))
            before, c0, r0 = receiver.count(), cpu_ns(hooked.proc.pid), time.process_time()
            r = wrk_result(wrk(hooked.port, "/v1/auth/login", "login.lua", conns, args.duration,
                               env={"BENCH_USERS": hook_files["users"]}))
            cpu["hooked"] += cpu_ns(hooked.proc.pid) - c0
            cpu["receiver"] += time.process_time() - r0
            calls += receiver.count() - before
            ok += r["requests"] - r["errors"]
            hook_runs.append(r)
            ratios.append(r["rps"] / plain_runs[-1]["rps"] if plain_runs[-1]["rps"] else 0)
        # The claim, checked on a sign-in made now.
        access, _ = sign_in(hooked.port, email)
        claims = _jwt_part(access, 1)
        if claims.get("plan") != "pro":
            raise RuntimeError(f"the access token carries no plan=pro: {json.dumps(claims)[:300]}")
    except Exception as e:  # noqa: BLE001 - reported in the table, the other scenarios go on
        log(f"{label}: hook login: error: {e}")
        if hooked and hooked.proc:
            log(f"{label}: hook login: its log: {os.path.join(workdir, f'server-{hooked.port}.log')}")
        return _failed_row(HOOK_LOGIN_SCENARIO, label, conns, e)
    finally:
        if hooked:
            hooked.stop()
        receiver.stop()
    med = statistics.median
    ratio = med(ratios)
    r = median_run(hook_runs)
    plain = median_run(plain_runs)
    hook_p99, plain_p99 = med(x["p99_ms"] for x in hook_runs), med(x["p99_ms"] for x in plain_runs)
    if r["errors"]:
        log(f"{label}: hook login: warning: {r['errors']} of {r['requests']} sign-ins failed ({r['error_detail']})")
    if calls < ok:
        log(f"{label}: hook login: warning: {calls} hook calls for {ok} successful sign-ins")
    cpu_plain = cpu["plain"] / 1e6 / max(1, plain_ok)
    cpu_hooked = cpu["hooked"] / 1e6 / max(1, ok)
    cpu_receiver = cpu["receiver"] * 1000 / max(1, calls)
    calls_note = (f"{calls:,} hook calls for {ok:,} sign-ins wrk counted (the rest: sign-ins in flight when wrk "
                  f"stopped counting)" if calls >= ok else f"ONLY {calls:,} hook calls for {ok:,} sign-ins")
    derived = (f"{ratio:.0%} of the plain sign-in (median of the rounds' ratios "
               + ", ".join(f"{x:.0%}" for x in ratios)
               + f"; hooked " + ", ".join(fmt_int(x["rps"]) for x in hook_runs)
               + " vs plain " + ", ".join(fmt_int(x["rps"]) for x in plain_runs)
               + f"/s, alternating); p99 {hook_p99:.1f} vs {plain_p99:.1f} ms (medians); tessera CPU per "
               f"sign-in {cpu_hooked:.2f} vs {cpu_plain:.2f} ms ({cpu_hooked - cpu_plain:+.2f}), the receiver's "
               f"{cpu_receiver:.2f} ms per call; {calls_note}; the token carries plan=pro")
    out = row(HOOK_LOGIN_SCENARIO, label, conns, r, derived)
    out.update({"hook_sign_ins_per_s": r["rps"], "login_sign_ins_per_s": plain["rps"],
                "hook_login_vs_login": ratio, "hook_login_vs_login_rounds": ratios,
                "hook_login_rounds_rps": [x["rps"] for x in hook_runs],
                "login_rounds_rps": [x["rps"] for x in plain_runs],
                "hook_p99_ms": hook_p99, "login_p99_ms": plain_p99,
                "hook_calls": calls, "hook_sign_ins_ok": ok, "hook_claim_plan": claims.get("plan"),
                "hook_cpu_ms_per_sign_in": cpu_hooked, "login_cpu_ms_per_sign_in": cpu_plain,
                "hook_receiver_cpu_ms_per_call": cpu_receiver})
    return out


def sign_up_burst(port, emails, workers):
    """Signs `emails` up through POST /v1/users as fast as `workers` keep-alive
    connections can: [(monotonic time sent, time answered, user id)], in order."""
    out = [None] * len(emails)

    def work(share):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for i in share:
                body = json.dumps({"email": emails[i], "password": PASSWORD, "full_name": "Bench User"})
                sent = time.monotonic()
                conn.request("POST", "/v1/users", body=body, headers={"content-type": "application/json"})
                res = conn.getresponse()
                data = res.read()
                answered = time.monotonic()
                if res.status != 201:
                    raise RuntimeError(f"sign-up answered {res.status}: {data[:200]!r}")
                out[i] = (sent, answered, json.loads(data)["id"])
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, [range(k, len(emails), workers) for k in range(workers)]))
    return out


def _await_events(receiver, ids, quiet_s=30):
    """Waits until every user of `ids` has had an event delivered, or none came for
    `quiet_s`: {user_id: [deliveries]} of those users."""
    want, last_seen, last_n = set(ids), time.monotonic(), -1
    while True:
        with receiver.lock:
            got = [d for d in receiver.deliveries if d[3] in want]
        n = len({d[3] for d in got})
        if n == len(want):
            break
        if n != last_n:
            last_n, last_seen = n, time.monotonic()
        elif time.monotonic() - last_seen > quiet_s:
            break
        time.sleep(0.05)
    by_user = {}
    for d in got:
        by_user.setdefault(d[3], []).append(d)
    return by_user


WEBHOOKS_SCENARIO = "webhooks: user.created from the outbox (POST /v1/users, loopback receiver)"


def webhooks(args, workdir, run_id, label, new_db):
    """The webhooks scenario: a server started with WEBHOOK_URLS at a loopback Receiver
    of the harness and WEBHOOK_EVENTS=user.created, on a database of its own. Two
    phases of `args.webhook_users` sign-ups each (POST /v1/users on 4 × cores keep-alive
    connections; each queues its event in the sign-up's transaction):
    - live: the receiver answers at once; from the first sign-up sent (its event is
      queued after that) to the last event delivered, events delivered per second; the
      lag from the last sign-up answered to the last event delivered; each event's
      latency from its sign-up's answer to its delivery;
    - backlog: the receiver holds each delivery (up to 4 s) while the sign-ups run, so
      that the sender stalls and the events wait in the outbox, then lets go: the
      backlog drained per second, the sender's own pace on an idle machine.
    Checked: one delivery with a distinct webhook-id for every user (more calls than
    users would be redeliveries, at least once). A server that cannot do it gives a row
    of zeros that says why, and the run goes on."""
    n, workers = args.webhook_users, 4 * CORES
    receiver = Receiver("events").start()
    server = None
    try:
        server = Server(args.binary, new_db("webhooks"), workdir, {
            "WEBHOOK_URLS": f"http://127.0.0.1:{receiver.port}/events",
            "WEBHOOK_SECRET": whsec(),
            "WEBHOOK_EVENTS": "user.created",
        })
        log(f"{label}: webhooks: starting tessera with WEBHOOK_URLS (receiver on port {receiver.port})")
        server.start()
        time.sleep(1)
        phases = {}
        for phase in ("live", "backlog"):
            emails = [f"wh-{phase}-{run_id}-{i}@bench.example" for i in range(n)]
            if phase == "backlog":
                receiver.gate.clear()
            log(f"{label}: webhooks, {phase}: {n} sign-ups on {workers} connections")
            ups = sign_up_burst(server.port, emails, workers)
            opened = time.monotonic()
            receiver.gate.set()
            by_user = _await_events(receiver, [u for _, _, u in ups])
            first_sent, last_answered = min(s for s, _, _ in ups), max(a for _, a, _ in ups)
            deliveries = [d for ds in by_user.values() for d in ds]
            ids = {d[1] for d in deliveries}
            last = max((d[0] for d in deliveries), default=opened)
            firsts = {u: min(d[0] for d in ds) for u, ds in by_user.items()}
            answered = {u: a for _, a, u in ups}
            latencies = [(firsts[u] - answered[u]) * 1000 for u in firsts]
            p = {"users": n, "delivered": len(by_user), "calls": len(deliveries), "distinct_ids": len(ids),
                 "types": sorted({d[2] for d in deliveries if d[2]}),
                 "signups_per_s": n / (last_answered - first_sent),
                 "delivered_per_s": len(by_user) / (last - first_sent) if last > first_sent else 0.0,
                 "lag_ms": (last - last_answered) * 1000,
                 "latency_p50_ms": _percentile(latencies, 50) if latencies else 0.0,
                 "latency_p90_ms": _percentile(latencies, 90) if latencies else 0.0,
                 "latency_p99_ms": _percentile(latencies, 99) if latencies else 0.0,
                 "latency_max_ms": max(latencies, default=0.0)}
            if phase == "backlog":
                before = sum(1 for t in firsts.values() if t < opened)
                p["held_before_open"] = before
                p["backlog"] = n - before
                p["drain_s"] = last - opened
                p["drain_per_s"] = (n - before) / (last - opened) if last > opened else 0.0
            log(f"{label}: webhooks, {phase}: {p['delivered']} of {n} users' events delivered "
                f"({p['calls']} calls, {p['distinct_ids']} distinct webhook-ids), sign-ups {p['signups_per_s']:.1f}/s, "
                f"delivered {p['delivered_per_s']:.1f}/s, lag {p['lag_ms']:.0f} ms"
                + (f", backlog {p['backlog']} drained at {p['drain_per_s']:.1f}/s" if phase == "backlog" else ""))
            phases[phase] = p
            if p["delivered"] != n or p["distinct_ids"] < n or p["types"] != ["user.created"]:
                raise RuntimeError(f"{phase}: {p['delivered']} of {n} users' events arrived ({p['calls']} calls, "
                                   f"{p['distinct_ids']} distinct webhook-ids, types {p['types']}); "
                                   f"see {os.path.join(workdir, f'server-{server.port}.log')}")
    except Exception as e:  # noqa: BLE001 - reported in the table, the other scenarios go on
        log(f"{label}: webhooks: error: {e}")
        return _failed_row(WEBHOOKS_SCENARIO, label, workers, e)
    finally:
        if server:
            server.stop()
        receiver.stop()
    live, back = phases["live"], phases["backlog"]
    r = {"requests": live["calls"], "rps": live["delivered_per_s"], "p50_ms": live["latency_p50_ms"],
         "p90_ms": live["latency_p90_ms"], "p99_ms": live["latency_p99_ms"], "max_ms": live["latency_max_ms"],
         "errors": (n - live["delivered"]) + (n - back["delivered"]), "error_detail": {}}
    derived = (f"{live['delivered_per_s']:,.1f} events delivered/s from the first sign-up to the last delivery "
               f"({n:,} users signed up at {live['signups_per_s']:,.1f}/s), the last "
               f"{live['lag_ms']:.0f} ms after the last sign-up; the columns: each event's latency from its "
               f"sign-up's answer. A backlog of {back['backlog']:,} (the receiver held the sender while "
               f"{n:,} more signed up) drained at {back['drain_per_s']:,.1f}/s in {back['drain_s']:.1f} s. "
               f"Every user's event arrived: {live['distinct_ids']:,} + {back['distinct_ids']:,} distinct "
               f"webhook-ids for {live['calls']:,} + {back['calls']:,} calls")
    out = row(WEBHOOKS_SCENARIO, label, workers, r, derived)
    out.update({"webhooks_users": n, "webhooks_delivered_per_s": live["delivered_per_s"],
                "webhooks_lag_ms": live["lag_ms"], "webhooks_signups_per_s": live["signups_per_s"],
                "webhooks_latency_p50_ms": live["latency_p50_ms"], "webhooks_latency_p99_ms": live["latency_p99_ms"],
                "webhooks_distinct_ids": live["distinct_ids"], "webhooks_calls": live["calls"],
                "webhooks_drain_per_s": back["drain_per_s"], "webhooks_backlog": back["backlog"],
                "webhooks_drain_s": back["drain_s"], "webhooks_phases": phases})
    return out


def bench_backend(backend, url, args, workdir, hash_ms, run_id, pii_url=None, new_db=None):
    """Every scenario on one server (and the servers of their own some start on the
    databases `new_db(name)` gives); returns table rows and resource figures."""
    label = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[backend]
    # The oauth scenario's provider starts first: the server reads its issuer from its
    # environment (the callback's PUBLIC_URL, on the server's own port, is the Server's).
    provider, provider_error, provider_env = None, None, {}
    if (backend == "sqlite" or args.full_postgres) and (not args.only or "oauth" in args.only):
        try:
            provider = OidcProvider(OidcProvider.find(args.oidc_provider), workdir).start()
            provider_env = oauth_server_env(provider)
            log(f"{label}: oidc-provider-mock at {provider.issuer}")
        except Exception as e:  # noqa: BLE001 - the oauth row says why, the other scenarios go on
            provider_error = f"oidc-provider-mock: {e}"
            log(f"{label}: {provider_error}")
    log(f"{label}: starting tessera")
    server = Server(args.binary, url, workdir, provider_env, flood_limits="flood" in args.only)
    try:
        server.start()
        time.sleep(1)
        res = {"startup_ms": server.startup_ms, "rss_idle_mib": server.rss_mib()}
        log(f"{label}: up in {server.startup_ms:.0f} ms, RSS {res['rss_idle_mib']:.1f} MiB; creating {args.users} users")
        files = create_users(server.port, args.users, run_id, workdir)
        rows = []

        def want(scenario):
            return not args.only or scenario in args.only

        if want("floor") or want("me"):
            # The floor and /me alternate for ROUNDS rounds on this one server, so that
            # both see the same drift of a shared machine; each row is its median round,
            # and the ratio is the median of the rounds' own me/floor ratios.
            floors, mes, ratios = [], [], []
            with RssSampler(server.proc.pid) as rss:
                for i in range(ROUNDS if want("me") else 1):
                    log(f"{label}: floor, round {i + 1}")
                    floors.append(run_wrk(server.port, "/health", "plain.lua", 64, args, warmup=i == 0))
                    if want("me"):
                        log(f"{label}: me, round {i + 1}")
                        rss.reset()
                        mes.append(run_wrk(server.port, "/v1/auth/me", "me.lua", 64, args, warmup=i == 0,
                                           env={"BENCH_TOKENS": files["tokens"]}))
                        res["rss_me_peak_mib"] = max(res.get("rss_me_peak_mib", 0), rss.peak / 1024)
                        ratios.append(mes[-1]["rps"] / floors[-1]["rps"] if floors[-1]["rps"] else 0)
            floor = median_run(floors)
            rows.append(row("floor: GET /health", label, 64, floor,
                            f"median of {len(floors)}: " + ", ".join(fmt_int(f["rps"]) for f in floors)))
            if want("me"):
                ratio = statistics.median(ratios)
                rows.append(row(f"me: GET /v1/auth/me ({args.users} users)", label, 64, median_run(mes),
                                f"{ratio:.0%} of floor (rounds: " + ", ".join(f"{r:.0%}" for r in ratios) + ")"))
                rows[-1]["me_over_floor"] = ratio
                rows[-1]["me_over_floor_rounds"] = ratios

        if backend == "sqlite" and want("me") and want("metrics"):
            # The cost of counting: the same floor-and-me rounds on a server of its own
            # (its own database file) with METRICS_ENABLED=false, right after.
            rows += metrics_cost(args, workdir, run_id, label)

        conns = 2 * CORES
        login = None
        if (backend == "sqlite" or args.full_postgres) and want("login"):
            log(f"{label}: login")
            # The single-thread hash time is measured again right before the scenario
            # (the server idle), so that the ideal reflects the machine as it is now;
            # the first measurement of the run and this one are averaged.
            now = hash_time(args)["median_ms"]
            hash_now = (hash_ms + now) / 2
            login = run_wrk(server.port, "/v1/auth/login", "login.lua", conns, args,
                            env={"BENCH_USERS": files["users"]})
            ideal = CORES / (hash_now / 1000)
            eff = login["rps"] / ideal
            rows.append(row("login: POST /v1/auth/login", label, conns, login,
                            f"efficiency {eff:.2f} (ideal {ideal:.1f}/s: {CORES} cores / {hash_now:.1f} ms, "
                            f"the mean of {hash_ms:.1f} ms at the start and {now:.1f} ms just before)"))
            rows[-1]["hash_ms"] = hash_now
            rows[-1]["efficiency"] = eff

        if (backend == "sqlite" or args.full_postgres) and want("passkey"):
            # Right after the password sign-in, so that both see the same machine.
            rows.append(passkey_login(server, files, args, label, login))

        if (backend == "sqlite" or args.full_postgres) and want("oauth"):
            # Also right after the password sign-in, its reference.
            rows.append(oauth_login(server, provider, provider_error, args, run_id, label, login))

        if (backend == "sqlite" or args.full_postgres) and want("mfa"):
            # Each user signs in at most three times (one code per step, three steps
            # usable now), so there are users enough for the whole run.
            n = max(64, int(args.duration * 2 * 60))
            log(f"{label}: mfa login: enrolling {n} + 20 users")
            mfa_users, _ = create_mfa_users(server.port, n, run_id, workdir)
            _, probe_users = create_mfa_users(server.port, 20, run_id + "-probe", os.path.join(workdir, "probe"))
            now = hash_time(args)["median_ms"]
            hash_now = (hash_ms + now) / 2
            log(f"{label}: mfa login")
            r = wrk_result(wrk(server.port, "/v1/auth/login", "mfa_login.lua", conns, args.duration, threads=conns,
                               env={"BENCH_MFA_USERS": mfa_users}))
            sign_ins = r["rps"] / 2
            ideal = CORES / (hash_now / 1000)
            eff = sign_ins / ideal
            password_ms, totp_ms = mfa_step_cost(server, probe_users)
            rows.append(row("mfa login: password + TOTP (two requests)", label, conns, r,
                            f"{sign_ins:.1f} sign-ins/s, efficiency {eff:.2f} (ideal {ideal:.1f}/s); server CPU per "
                            f"sign-in alone: TOTP step {totp_ms:.2f} ms = {totp_ms / (password_ms + totp_ms):.1%}, "
                            f"password step {password_ms:.1f} ms"))
            rows[-1]["efficiency"] = eff
            rows[-1]["totp_step_share"] = totp_ms / (password_ms + totp_ms)

        if (backend == "sqlite" or args.full_postgres) and want("storm"):
            log(f"{label}: storm")
            # Sign-in saturated for the whole window; /health measured inside it.
            storm_login = wrk(server.port, "/v1/auth/login", "login.lua", conns, args.duration + 2,
                              env={"BENCH_USERS": files["users"]})
            time.sleep(1)
            probe = wrk(server.port, "/health", "plain.lua", 8, args.duration, threads=1)
            health = wrk_result(probe)
            during = wrk_result(storm_login)
            rows.append(row("storm: GET /health while login is saturated", label, f"8 + {conns}", health,
                            f"{during['rps']:.1f} logins/s meanwhile, /health max {health['max_ms']:.1f} ms"))
            rows[-1]["storm_logins_rps"] = during["rps"]

        if (backend == "sqlite" or args.full_postgres) and want("hook_login") and new_db:
            # The password sign-in again, alternating with a server that calls the custom
            # access token hook on every sign-in (issue 32).
            rows.append(hook_login(server, files, args, workdir, run_id, label, new_db))

        refresh = None
        if want("refresh"):
            log(f"{label}: refresh")
            refresh = run_wrk(server.port, "/v1/auth/refresh", "refresh.lua", args.refresh_conns, args,
                              env={"BENCH_REFRESH": files["refresh"]},
                              warmup_env={"BENCH_REFRESH": files["refresh_warmup"]})
            rows.append(row("refresh: POST /v1/auth/refresh (rotation)", label, args.refresh_conns, refresh))

        if want("supabase"):
            # Right after the native refresh, so that both see the same machine.
            rows.append(supabase_refresh(server, files, args, workdir, label, refresh))

        if want("oauth_code") or want("oauth_refresh"):
            # tessera's provider (issue 31), its refresh near the native one, its reference.
            rows += op_scenarios(server, files, args, workdir, label, refresh, want)

        if want("register"):
            log(f"{label}: register")
            register = run_wrk(server.port, "/v1/users", "register.lua", conns, args,
                               env={"BENCH_RUN_ID": run_id, "BENCH_PASSWORD": PASSWORD})
            rows.append(row("register: POST /v1/users", label, conns, register))

        if want("pii") and pii_url:
            rows += pii_cost(server, files, pii_url, args, workdir, run_id, label)

        if want("webhooks") and new_db:
            # Event webhooks from the outbox, on a server of their own (issue 32).
            rows.append(webhooks(args, workdir, run_id, label, new_db))

        if backend == "sqlite" and args.only and "flood" in args.only:
            rows += flood(server, files, args, run_id, label)

        res["rss_peak_mib"] = server.rss_mib("VmHWM")
        time.sleep(2)
        res["rss_after_mib"] = server.rss_mib()
        return rows, res
    finally:
        server.stop()
        if provider:
            provider.stop()


def hash_time(args):
    """Single-thread Argon2id verify time with the server's parameters (same code,
    same environment), measured by crates/tessera-core/examples/hash_time.rs."""
    # Run where the server runs (a temp dir), so both read the same settings.
    out = subprocess.run([args.hash_timer, str(args.hash_samples)], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    if out.returncode != 0:
        raise RuntimeError(f"hash timer failed: {out.stderr}")
    return json.loads(out.stdout)


def machine():
    info = {"nproc": CORES, "kernel": platform.release(), "arch": platform.machine()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
        info["cpu"] = m.group(1).strip() if m else "unknown"
    except OSError:
        info["cpu"] = "unknown"
    with open("/proc/meminfo") as f:
        kib = int(f.readline().split()[1])
    info["memory_gib"] = round(kib / 1024 / 1024, 1)
    info["loadavg_before"] = os.getloadavg()
    return info


def fmt_int(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def table(rows, resources, binary_mib):
    out = ["| scenario | backend | conns | req/s | p50 ms | p99 ms | errors | derived |",
           "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        out.append(f"| {r['scenario']} | {r['backend']} | {r['conns']} | {fmt_int(r['rps'])} | "
                   f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {r['derived']} |")
    for backend, res in resources.items():
        out.append(f"| resources | {backend} | | | | | | RSS idle {res['rss_idle_mib']:.1f} MiB, "
                   f"peak under me {res.get('rss_me_peak_mib', float('nan')):.1f} MiB, peak {res['rss_peak_mib']:.1f} MiB, "
                   f"{res['rss_after_mib']:.1f} MiB 2 s after the load; "
                   f"start-up to first 200 {res['startup_ms']:.0f} ms |")
    out.append(f"| resources | – | | | | | | release binary {binary_mib:.1f} MiB |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--binary")
    p.add_argument("--hash-timer")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "latest.json"))
    p.add_argument("--command", default="bench/run")
    p.add_argument("--only", default="",
                   help="comma-separated scenarios to run (floor, me, metrics, login, passkey (usernameless "
                        "passkey sign-ins with pre-signed ES256 assertions, with its ratio to login when both run), "
                        "mfa, storm, refresh, supabase "
                        "(POST /auth/v1/token?grant_type=refresh_token, with its ratio to refresh when both run), "
                        "register, pii, oauth (whole sign-ins at oidc-provider-mock, PKCE: authorize, the "
                        "provider's form, callback, token; with its ratio to login when both run), "
                        "oauth_code (tessera's provider: GET /oauth/authorize with a signed-in browser, then "
                        "POST /oauth/token exchanging the code, confidential client; exchanges/s and their p99), "
                        "oauth_refresh (refresh_token rotation at POST /oauth/token, with its ratio to refresh "
                        "when both run), "
                        "hook_login (password sign-ins on a second server calling the custom access token hook "
                        "at a loopback receiver of the harness, alternating with plain sign-ins: its share of "
                        "them and both p99s), webhooks (user.created events from the outbox of a third server "
                        "to a loopback receiver: --webhook-users sign-ups, events delivered/s, the lag after "
                        "the last sign-up, and a held-up backlog's drain rate), "
                        "and flood, which only runs when named: a million password-reset addresses against the "
                        "in-memory limits); all but flood when empty. For iterating on one figure; "
                        "docs/performance.md's table is a whole run.")
    p.add_argument("--passkey-rate", type=float, default=2_500 * CORES,
                   help="passkey sign-ins per second to pre-sign assertions for, warm-up and run (default 2500 "
                        "per core, a generous estimate: a run that uses them all up is run again with three "
                        "times as many)")
    p.add_argument("--oauth-conns", type=int, default=2 * CORES,
                   help="sign-ins in flight in the oauth scenario (default 2 per core, as login)")
    p.add_argument("--oidc-provider",
                   help="the oidc-provider-mock executable for the oauth scenario (default: what "
                        "scripts/oidc-provider prints; it installs the pinned provider on first use)")
    p.add_argument("--webhook-users", type=int,
                   help="sign-ups (events) per phase of the webhooks scenario (default 2000 with --quick, 5000)")
    p.add_argument("--self-test", action="store_true",
                   help="check the passkey scenario's software authenticator offline (its ES256 signatures "
                        "against OpenSSL and Node, its CBOR and authenticatorData) and exit")
    args = p.parse_args()
    if args.self_test:
        webauthn.self_test(log)
        return
    if not args.binary or not args.hash_timer:
        p.error("--binary and --hash-timer are required")
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    if args.quick:
        args.warmup, args.duration, args.users, args.hash_samples = 2, 5, 128, 20
    else:
        args.warmup, args.duration, args.users, args.hash_samples = 5, 20, 256, 50
    args.refresh_conns = 32
    if not args.webhook_users:
        args.webhook_users = 2000 if args.quick else 5000
    args.full_postgres = not args.quick
    run_id = secrets.token_hex(4)
    started = time.monotonic()
    info = machine()
    log(f"{info['cpu']}, {CORES} cores, {info['memory_gib']} GiB; load average {info['loadavg_before'][0]:.2f}")
    hashing = hash_time(args)
    log(f"Argon2id m={hashing['m_kib']} t={hashing['t']} p={hashing['p']}: "
        f"{hashing['median_ms']:.2f} ms per verify, one thread")

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    rows, resources, notes = [], {}, []
    pg = None
    with tempfile.TemporaryDirectory(prefix="tessera-bench.") as workdir:
        try:
            for backend in backends:
                if backend == "sqlite":
                    url = f"sqlite://{workdir}/bench.db"
                    pii_url = f"sqlite://{workdir}/bench-pii.db"

                    def new_db(name):
                        return f"sqlite://{workdir}/bench-{name}.db"
                elif backend == "postgres":
                    bindir = find_pg_bin()
                    if not bindir:
                        notes.append("PostgreSQL skipped: no server binaries found (install `postgresql`)")
                        log(notes[-1])
                        continue
                    pg = Postgres(bindir)
                    pg.start()
                    info["postgres"] = pg.version()
                    url = pg.url
                    pii_url = pg.create_database("tessera_pii")

                    def new_db(name, pg=pg):
                        return pg.create_database(f"tessera_{name}")
                else:
                    raise SystemExit(f"unknown backend {backend}")
                r, res = bench_backend(backend, url, args, workdir, hashing["median_ms"], run_id, pii_url,
                                       new_db)
                rows += r
                # An --only that names no scenario of this backend leaves no row.
                resources[backend if not r else r[0]["backend"]] = res
        finally:
            if pg:
                pg.stop()

    binary_mib = os.path.getsize(args.binary) / 1024 / 1024
    md = table(rows, resources, binary_mib)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    elapsed = time.monotonic() - started
    info["loadavg_after"] = os.getloadavg()
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": args.command,
        "mode": "quick" if args.quick else "full",
        "commit": commit + ("-dirty" if dirty else ""),
        "machine": info,
        "method": {
            "load_generator": "wrk on the same machine", "warmup_s": args.warmup, "duration_s": args.duration,
            "users": args.users, "server_env": "LOG_LEVEL=warn RATE_LIMIT_ENABLED=false, WEBAUTHN_RP_ID=localhost "
                          "WEBAUTHN_RP_ORIGINS=http://localhost:<port> PUBLIC_URL=http://127.0.0.1:<port>; "
                          "when the oauth scenario runs, "
                          "EXTERNAL_MOCK_ENABLED=true EXTERNAL_MOCK_CLIENT_ID=bench EXTERNAL_MOCK_SECRET=bench "
                          "EXTERNAL_MOCK_ISSUER=<oidc-provider-mock> REDIRECT_URLS=http://127.0.0.1:9; "
                          "the oauth_code and oauth_refresh scenarios' admin made with `tessera admin create` "
                          "beside the running server, the provider's key the generated development ES256 one; "
                          "the hook_login scenario's second server HOOK_CUSTOM_ACCESS_TOKEN_ENABLED=true "
                          "HOOK_CUSTOM_ACCESS_TOKEN_URI=http://127.0.0.1:<receiver>/claims "
                          "HOOK_CUSTOM_ACCESS_TOKEN_SECRETS=v1,whsec_<32 random bytes>, the webhooks scenario's "
                          "WEBHOOK_URLS=http://127.0.0.1:<receiver>/events WEBHOOK_SECRET=v1,whsec_<32 random bytes> "
                          "WEBHOOK_EVENTS=user.created, each on a database of its own; "
                          "other settings default",
            "postgres": "fsync on, synchronous_commit=off (SQLite runs WAL + synchronous=NORMAL)",
        },
        "hash": hashing,
        "rows": rows,
        "resources": resources,
        "binary_mib": binary_mib,
        "notes": notes,
        "elapsed_s": round(elapsed, 1),
        "markdown": md,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(md)
    print()
    print(f"{info['cpu']}, {CORES} cores, {info['memory_gib']} GiB RAM; load average before "
          f"{info['loadavg_before'][0]:.2f}; Argon2id m={hashing['m_kib']} t={hashing['t']} p={hashing['p']} "
          f"{hashing['median_ms']:.2f} ms/verify on one thread; rate limits off; {elapsed:.0f} s; "
          f"written to {os.path.relpath(args.out, ROOT)}")
    for n in notes:
        print(n)


if __name__ == "__main__":
    main()
