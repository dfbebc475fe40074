#!/usr/bin/env python3
"""Times the admin console's pages beside the admin API's answers on the same server.

Measured the way docs/performance.md measures the admin API ("Administration at
scale"): requests one after another, each on a new connection (like curl), one warm-up
then N timed requests per query; p50 / p90 in ms of the whole answer as the client sees
it on the same machine.

    python3 bench/admin_pages.py --base http://127.0.0.1:8080 \
        --email root@example.com --password '…' [--n 30]

The account must be an admin without MFA. Seed the users first with
`tessera admin seed-users --count 1000000`.
"""

import argparse
import http.client
import json
import re
import statistics
import time
import urllib.parse


def request(base, method, path, headers=None, body=None):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        data = res.read()
        return res.status, res.getheaders(), data
    finally:
        conn.close()


def cookies_of(headers, jar):
    for k, v in headers:
        if k.lower() == "set-cookie":
            name, _, rest = v.partition("=")
            value = rest.split(";", 1)[0]
            if value:
                jar[name] = value
            else:
                jar.pop(name, None)


def cookie_header(jar):
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def console_sign_in(base, email, password):
    jar = {}
    status, headers, body = request(base, "GET", "/admin/sign-in")
    cookies_of(headers, jar)
    token = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
    form = urllib.parse.urlencode({"csrf": token, "email": email, "password": password})
    status, headers, _ = request(
        base, "POST", "/admin/sign-in",
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie_header(jar)}, form)
    cookies_of(headers, jar)
    if status != 303 or "tessera_console" not in jar:
        raise SystemExit(f"console sign-in failed: {status}")
    return jar


def api_token(base, email, password):
    status, _, body = request(
        base, "POST", "/v1/auth/login", {"Content-Type": "application/json"},
        json.dumps({"email": email, "password": password}))
    if status != 200:
        raise SystemExit(f"API sign-in failed: {status} {body[:200]}")
    return json.loads(body)["access_token"]


def timed(base, path, headers, n):
    request(base, "GET", path, headers)  # warm-up
    samples = []
    status = None
    for _ in range(n):
        t0 = time.perf_counter()
        status, _, body = request(base, "GET", path, headers)
        samples.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:300]}")
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    jar = console_sign_in(a.base, a.email, a.password)
    page = {"Cookie": cookie_header(jar)}
    api = {"Authorization": f"Bearer {api_token(a.base, a.email, a.password)}"}

    # The second page (the first page's link), a page deep in the list (its cursor made
    # from the user the API lists 99 % of the way down), a user page.
    _, _, first = request(a.base, "GET", "/admin/users", page)
    nxt = re.search(rb'id="next-page" href="([^"]+)"', first).group(1).decode().replace("&amp;", "&")
    user = re.search(rb'href="(/admin/users/[0-9a-f-]{36})"', first).group(1).decode()
    _, _, body = request(a.base, "GET", "/v1/admin/users?limit=1", api)
    total = json.loads(body)["total"]
    _, _, body = request(a.base, "GET", f"/v1/admin/users?limit=1&skip={total * 99 // 100}", api)
    deep_user = json.loads(body)["items"][0]
    deep = "/admin/users?" + urllib.parse.urlencode({"after": f"{deep_user['created_at']}_{deep_user['id']}"})

    rows = [
        ("console", "/admin (dashboard, 30 days)", "/admin", page),
        ("console", "/admin?days=7", "/admin?days=7", page),
        ("console", "/admin?days=365", "/admin?days=365", page),
        ("api", "/v1/admin/analytics (30 days)", "/v1/admin/analytics", api),
        ("console", "/admin/users (page 1 + total)", "/admin/users", page),
        ("api", "/v1/admin/users (page 1 + total)", "/v1/admin/users?limit=50", api),
        ("console", "/admin/users, page 2 (keyset)", nxt, page),
        ("console", "/admin/users, a page 99 % down (keyset)", deep, page),
        ("api", "/v1/admin/users?skip=99 % (for comparison)", f"/v1/admin/users?limit=50&skip={total * 99 // 100}", api),
        ("console", "/admin/users?q=seed12345 (email prefix)", "/admin/users?q=seed12345", page),
        ("api", "/v1/admin/users?q=seed12345", "/v1/admin/users?q=seed12345", api),
        ("console", "/admin/users?q=grace+kay (name prefix)", "/admin/users?q=grace+kay", page),
        ("console", "/admin/users?role=admin", "/admin/users?role=admin", page),
        ("console", "/admin/users?active=false", "/admin/users?active=false", page),
        ("console", "/admin/users/{id} (user page)", user, page),
        ("console", "/admin/audit", "/admin/audit", page),
        ("console", "/admin/api-keys", "/admin/api-keys", page),
    ]
    print(f"| {a.label or a.base} | p50 ms | p90 ms |")
    print("|---|---:|---:|")
    for kind, label, path, headers in rows:
        p50, p90 = timed(a.base, path, headers, a.n)
        print(f"| {label} | {p50:.1f} | {p90:.1f} |", flush=True)


if __name__ == "__main__":
    main()
