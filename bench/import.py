"""`bench/import`: how fast `tessera import` brings a CSV of users, next to its floor.

For each backend (SQLite; PostgreSQL when its server binaries are found, a throwaway
server as bench/run starts one), on a fresh database each time, in one go:

  floor   tessera admin seed-users --count N   (the same rows, generated, inserted in
                                                multi-row statements; nothing read or checked)
  import  tessera import --from csv FILE       (N rows of email, bcrypt hash, verified,
                                                name, created_at, role, metadata)

and reports wall time, users per second, peak RSS (the child's max resident set), and
the ratio import / floor. The hashes are copied, not computed: every row holds the same
bcrypt hash (of `Bench-Import-Pw1!`), as an export's would be different ones at the same
cost. Runs are repeated (--runs, median reported). The imported database is then signed
in to once, through the server, to show the copied hash verifies.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Postgres, Server, find_pg_bin, http_json  # noqa: E402

# bcrypt (cost 10) of "Bench-Import-Pw1!", made by pyca/bcrypt.
HASH = "$2b$10$YxtD8kynPqGLheJ4A1Gnd.uz9i2xcb.p4mitcCW.sWeMYke6f3jyG"
PASSWORD = "Bench-Import-Pw1!"


def write_csv(path, n, password_hash):
    with open(path, "w") as f:
        f.write("email,password_hash,email_verified,full_name,phone,created_at,role,metadata\n")
        for i in range(n):
            f.write(f"user{i}@import.example,{password_hash},true,Imported User {i},,"
                    f"2024-01-01T00:00:00Z,user,\"{{\"\"n\"\": {i}}}\"\n")


def one_run(kind, binary, url, csv_path, n, batch):
    """One measured command in a fresh python child, so that its peak RSS is its own."""
    code = (
        "import json,resource,subprocess,sys,time,os\n"
        "cmd=json.loads(sys.argv[1]);t=time.monotonic()\n"
        "o=subprocess.run(cmd,capture_output=True,text=True)\n"
        "s=time.monotonic()-t\n"
        "print(json.dumps({'rc':o.returncode,'s':s,'rss':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
        "'out':o.stdout+o.stderr}))\n")
    if kind == "floor":
        cmd = [binary, "admin", "seed-users", "--count", str(n), "--batch", str(batch), "--days", "1"]
    else:
        cmd = [binary, "import", "--from", "csv", csv_path, "--batch", str(batch)]
    env = dict(os.environ, DATABASE_URL=url, LOG_LEVEL="warn", ENVIRONMENT="development")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(cmd)], env=env, capture_output=True, text=True)
    res = json.loads(r.stdout)
    if res["rc"] != 0:
        raise RuntimeError(f"{kind} failed: {res['out']}")
    return res["s"], res["rss"] / 1024, res["out"].strip()


def fresh(backend, pg, workdir, tag):
    if backend == "sqlite":
        path = os.path.join(workdir, f"{tag}.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return f"sqlite://{path}"
    return pg.create_database(tag)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--out", default="bench/results/import.json")
    ap.add_argument("--command", default="bench/import")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="tessera-bench-import.")
    csv_path = os.path.join(workdir, "users.csv")
    write_csv(csv_path, args.users, HASH)
    size_mb = os.path.getsize(csv_path) / 1e6
    print(f"[bench] {args.users} rows, {size_mb:.0f} MB CSV", file=sys.stderr)

    pg = None
    backends = args.backends.split(",")
    if "postgres" in backends:
        bindir = find_pg_bin()
        if bindir:
            pg = Postgres(bindir)
            pg.start()
        else:
            print("[bench] no PostgreSQL server binaries: SQLite only", file=sys.stderr)
            backends = [b for b in backends if b != "postgres"]
    results = []
    try:
        for backend in backends:
            runs = {"floor": [], "import": []}
            last_import_url = None
            for i in range(args.runs):
                for kind in ("floor", "import"):
                    url = fresh(backend, pg, workdir, f"{kind}_{i}")
                    s, rss, out = one_run(kind, args.binary, url, csv_path, args.users, args.batch)
                    runs[kind].append((s, rss))
                    print(f"[bench] {backend} {kind} run {i + 1}: {s:.1f} s, {args.users / s:,.0f} users/s, "
                          f"peak RSS {rss:.0f} MiB", file=sys.stderr)
                    if kind == "import":
                        last_import_url = url
                        if f"imported {args.users}," not in out:
                            raise RuntimeError(f"the import did not bring every row: {out}")
            # The copied hash verifies: sign one imported user in through the server.
            server = Server(args.binary, last_import_url, workdir).start()
            try:
                status, _ = http_json(server.port, "POST", "/v1/auth/login",
                                      {"email": f"user{args.users - 1}@import.example", "password": PASSWORD})
            finally:
                server.stop()
            if status != 200:
                raise RuntimeError(f"an imported user could not sign in: {status}")
            med = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
            rss = {k: statistics.median(r for _, r in v) for k, v in runs.items()}
            results.append({
                "backend": backend,
                "users": args.users,
                "floor_seconds": round(med["floor"], 2),
                "import_seconds": round(med["import"], 2),
                "floor_users_per_s": round(args.users / med["floor"]),
                "import_users_per_s": round(args.users / med["import"]),
                "import_over_floor": round(med["import"] / med["floor"], 2),
                "floor_peak_rss_mib": round(rss["floor"]),
                "import_peak_rss_mib": round(rss["import"]),
                "runs": {k: [[round(s, 2), round(r)] for s, r in v] for k, v in runs.items()},
            })
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n`{args.command}`: {args.users:,} users, median of {args.runs} runs, "
          f"{os.cpu_count()} CPUs\n")
    print("| backend | floor (seed-users) | import | import users/s | import / floor | peak RSS (import) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['floor_seconds']} s ({r['floor_users_per_s']:,}/s) | {r['import_seconds']} s "
              f"| {r['import_users_per_s']:,} | {r['import_over_floor']} | {r['import_peak_rss_mib']} MiB |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"command": args.command, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
