#!/usr/bin/env python3
"""A receiver of signed webhooks for the integration tests (tests/it/receiver.rs).

Every POST to a path that does not start with /_ is a webhook: its signature is
verified by the `standardwebhooks` library (PyPI; scripts/hook-receiver installs it),
never by tessera's own code, against each --secret in turn (one that verifies is
enough: a rotation). The call is recorded; an unverified one is answered
401 {"error":"bad signature"}, a verified one as configured for its path (default:
200 {} as application/json).

    hook-receiver.py --secret whsec_... [--secret whsec_...] [--port 0] [--host 127.0.0.1]

(a `v1,` before a secret, as tessera's settings write it, is dropped.)

Prints exactly one line, `listening PORT`, on stdout once it accepts connections;
nothing else goes to stdout. SIGTERM or SIGINT ends it (exit status 0). With
--exit-with-stdin it also ends when its stdin reaches end of file (its parent died).

Control paths:
  POST /_respond  {"path": "/hook", "responses": [R, ...], "then": R}
      the answers to the next calls to that path, one each, in order; once they are
      used up, `then` (if given) or the default answers every later call. Replaces
      what was set for that path before. R is an object, every field optional:
        status        HTTP status (200)
        body          a JSON value (sent serialised) or a string (sent as is) ({})
        body_size     instead of body: N bytes, {"claims":{"pad":"xxx..."}} when N >= 21
        content_type  the Content-Type (application/json)
        headers       more response headers, {"Retry-After": "1"}
        delay_ms      wait this long before answering (0)
  POST /_reset    forget every recorded call and every configured answer
  GET  /_calls[?path=/hook]
      {"calls": [C, ...]} in arrival order, of that path or of all. C is
      {"path", "query", "id" (webhook-id), "timestamp" (webhook-timestamp),
       "verified", "error" (when not verified), "body" (parsed JSON, else the text),
       "headers" {lower-case name: value}, "status" (what it was answered),
       "received_at" (Unix time, seconds, float)}
"""

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from standardwebhooks import Webhook

DEFAULT_RESPONSE = {"status": 200, "body": {}, "content_type": "application/json"}
PAD_PREFIX = b'{"claims":{"pad":"'
PAD_SUFFIX = b'"}}'


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []
        # path -> {"responses": [R, ...] (still to use), "then": R or None}
        self.behaviours = {}

    def reset(self):
        with self.lock:
            self.calls.clear()
            self.behaviours.clear()

    def record(self, call):
        with self.lock:
            self.calls.append(call)

    def next_response(self, path):
        with self.lock:
            b = self.behaviours.get(path)
            if b is None:
                return DEFAULT_RESPONSE
            if b["responses"]:
                return b["responses"].pop(0)
            return b["then"] if b["then"] is not None else DEFAULT_RESPONSE

    def calls_of(self, path):
        with self.lock:
            return [c for c in self.calls if path is None or c["path"] == path]


def encode_body(r):
    """The bytes of response R's body."""
    if "body_size" in r:
        n = int(r["body_size"])
        if n >= len(PAD_PREFIX) + len(PAD_SUFFIX):
            return PAD_PREFIX + b"x" * (n - len(PAD_PREFIX) - len(PAD_SUFFIX)) + PAD_SUFFIX
        return b"x" * max(n, 0)
    body = r.get("body", DEFAULT_RESPONSE["body"])
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def validate_response(r, what):
    if not isinstance(r, dict):
        raise ValueError(f"{what} is not an object")
    if "status" in r and not (isinstance(r["status"], int) and 100 <= r["status"] <= 999):
        raise ValueError(f"{what}.status is not an HTTP status")
    if "headers" in r and not (
        isinstance(r["headers"], dict) and all(isinstance(v, str) for v in r["headers"].values())
    ):
        raise ValueError(f"{what}.headers is not an object of strings")
    if "body_size" in r and not isinstance(r["body_size"], int):
        raise ValueError(f"{what}.body_size is not an integer")
    if "delay_ms" in r and not isinstance(r["delay_ms"], (int, float)):
        raise ValueError(f"{what}.delay_ms is not a number")
    if "content_type" in r and not isinstance(r["content_type"], str):
        raise ValueError(f"{what}.content_type is not a string")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hook-receiver"
    sys_version = ""

    # Quiet: no access log (stderr only ever gets errors).
    def log_message(self, format, *args):
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers, up to the empty line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # the CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status, body, content_type="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if status < 200 or status in (204, 304):
            body = b""  # no body, and no Content-Length (RFC 9110, 8.6)
        else:
            self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status, value):
        self.send(status, json.dumps(value).encode())

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/_calls":
            self.read_body()
            path = parse_qs(url.query).get("path", [None])[0]
            self.send_json(200, {"calls": self.server.state.calls_of(path)})
        elif url.path.startswith("/_"):
            self.read_body()
            self.send_json(404, {"error": "not found"})
        else:
            self.read_body()
            self.send_json(405, {"error": "method not allowed"})

    def do_POST(self):
        url = urlsplit(self.path)
        body = self.read_body()
        if url.path.startswith("/_"):
            self.control(url.path, body)
        else:
            self.webhook(url, body)

    def do_PUT(self):
        self.read_body()
        self.send_json(405, {"error": "method not allowed"})

    do_DELETE = do_PATCH = do_PUT

    def control(self, path, body):
        state = self.server.state
        if path == "/_reset":
            state.reset()
            self.send_json(200, {})
        elif path == "/_respond":
            try:
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("not an object")
                hook_path = spec.get("path")
                if not (isinstance(hook_path, str) and hook_path.startswith("/")):
                    raise ValueError("path must be a string that starts with /")
                responses = spec.get("responses", [])
                if not isinstance(responses, list):
                    raise ValueError("responses is not a list")
                for i, r in enumerate(responses):
                    validate_response(r, f"responses[{i}]")
                then = spec.get("then")
                if then is not None:
                    validate_response(then, "then")
            except ValueError as e:
                self.send_json(400, {"error": f"bad /_respond: {e}"})
                return
            with state.lock:
                state.behaviours[hook_path] = {"responses": list(responses), "then": then}
            self.send_json(200, {})
        else:
            self.send_json(404, {"error": "not found"})

    def webhook(self, url, body):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        error = None
        for secret in self.server.secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
                error = None
                break
            except Exception as e:  # WebhookVerificationError, or a header it chokes on
                error = str(e) or type(e).__name__
        verified = error is None
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", errors="replace")
        call = {
            "path": url.path,
            "query": url.query,
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "verified": verified,
            "body": parsed,
            "headers": headers,
            "received_at": time.time(),
        }
        if not verified:
            call["error"] = error
            call["status"] = 401
            self.server.state.record(call)
            self.send_json(401, {"error": "bad signature"})
            return
        r = self.server.state.next_response(url.path)
        call["status"] = r.get("status", DEFAULT_RESPONSE["status"])
        # Recorded before the delay: a test sees the call as soon as it has arrived.
        self.server.state.record(call)
        delay = r.get("delay_ms", 0)
        if delay:
            time.sleep(delay / 1000)
        self.send(
            call["status"],
            encode_body(r),
            r.get("content_type", DEFAULT_RESPONSE["content_type"]),
            r.get("headers"),
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that hung up (e.g. timed out during a delay) is not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description="A receiver of signed webhooks (Standard Webhooks) for tests.")
    parser.add_argument("--secret", action="append", required=True, help="whsec_... (or v1,whsec_...); may be repeated")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin reaches end of file")
    args = parser.parse_args()

    # tessera's settings write a secret `v1,whsec_...`; the library takes `whsec_...`.
    secrets = [s.removeprefix("v1,") for s in args.secret]
    for s in secrets:
        try:
            Webhook(s)
        except Exception as e:
            parser.error(f"bad --secret {s!r}: {e}")

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    try:
        server = Server((args.host, args.port), Handler)
    except OSError as e:
        print(f"hook-receiver: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        sys.exit(2)
    server.secrets = secrets
    server.state = State()

    if args.exit_with_stdin:

        def watch():
            while sys.stdin.buffer.read(4096):
                pass
            signal.raise_signal(signal.SIGTERM)

        threading.Thread(target=watch, daemon=True).start()

    sys.stdout.write(f"listening {server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
