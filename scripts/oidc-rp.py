"""tessera's OpenID provider as an independent relying party sees it, through Authlib.

Authlib's OAuth 2 client drives the code flow (PKCE S256, client_secret_post for the
confidential client, so that the other token endpoint authentication method than
openid-client's is exercised) and its JOSE / OIDC tools judge the ID tokens (signature
via the JWKS, iss, aud, exp, iat, nonce, at_hash). The browser's part (sign-in and
consent forms, redirects, cookies) is an httpx.Client without automatic redirects.
Run it through `scripts/oidc-rp authlib`, which picks the Python of the venv
scripts/oidc-provider installs (Authlib 1.9.10, httpx).

Inputs (environment): OP_ISSUER, OP_CONFIDENTIAL_ID, OP_CONFIDENTIAL_SECRET,
OP_PUBLIC_ID, OP_REDIRECT_URI, OP_EMAIL, OP_PASSWORD, OP_DYNAMIC (1: also dynamic
client registration, RFC 7591, with a plain POST: Authlib has no client for it).
Output: one JSON line per step on stdout, {"step", "ok": true, ...}; on a failure a last
{"step", "ok": false, "error"} line, the reason on stderr, and exit status 1 (2: bad
inputs).
"""

import json
import os
import re
import secrets
import sys
import warnings
from html import unescape
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from authlib.deprecate import AuthlibDeprecationWarning

# authlib.jose is deprecated in favour of joserfc from 1.7 on, but is what 1.9 documents
# for decoding ID tokens with a key set; the warning is noise here.
warnings.simplefilter("ignore", AuthlibDeprecationWarning)

import httpx  # noqa: E402
from authlib.integrations.httpx_client import OAuth2Client, OAuthError  # noqa: E402
from authlib.jose import JsonWebKey, JsonWebToken  # noqa: E402
from authlib.oidc.core import CodeIDToken  # noqa: E402

NEED = ["OP_ISSUER", "OP_CONFIDENTIAL_ID", "OP_CONFIDENTIAL_SECRET", "OP_PUBLIC_ID",
        "OP_REDIRECT_URI", "OP_EMAIL", "OP_PASSWORD"]
missing = [k for k in NEED if not os.environ.get(k)]
if missing:
    print(f"oidc-rp (authlib): missing environment variables: {' '.join(missing)}", file=sys.stderr)
    sys.exit(2)
env = os.environ
ISSUER = env["OP_ISSUER"]
REDIRECT = env["OP_REDIRECT_URI"]
SCOPE = "openid profile email offline_access"

# --- steps, and what the server answered when one fails ----------------------------------
# Every client below records its last HTTP exchange through these hooks, so that a failed
# step can show what the server answered.
last = None


def on_request(request):
    global last
    last = {"request": f"{request.method} {request.url}"}


def on_response(response):
    global last
    response.read()
    last = {"request": f"{response.request.method} {response.request.url}",
            "status": response.status_code, "body": response.text[:400]}


HOOKS = {"request": [on_request], "response": [on_response]}


def describe(e):
    if isinstance(e, OAuthError):
        return f"OAuth error {e.error}: {e.description}"
    return f"{type(e).__name__}: {e}"


def step(name, fn):
    """Runs one step; prints its result (without the keys starting with _) and returns it."""
    global last
    last = None
    try:
        result = fn() or {}
    except Exception as e:  # noqa: BLE001 - every failure ends the run with its reason
        answer = ""
        if last and "status" in last:
            answer = f"\n  last HTTP exchange: {last['request']} -> {last['status']} {last['body']}"
        elif last:
            answer = f"\n  last HTTP request: {last['request']} (no answer)"
        print(json.dumps({"step": name, "ok": False, "error": describe(e), "last_exchange": last}), flush=True)
        print(f"oidc-rp (authlib): step {name} failed: {describe(e)}{answer}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"step": name, "ok": True, **{k: v for k, v in result.items() if not k.startswith("_")}}),
          flush=True)
    return result


def check(cond, message):
    if not cond:
        raise AssertionError(message)


# --- the browser: cookie jar (httpx's), redirects, forms ------------------------------------
class FormParser(HTMLParser):
    """The first <form> of a page: action, method, inputs and buttons (attributes decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.form, self.closed = None, False

    def handle_starttag(self, tag, attrs):
        a = {k: v if v is not None else "" for k, v in attrs}
        if tag == "form" and self.form is None:
            self.form = {"action": a.get("action", ""), "method": a.get("method", "get").upper(),
                         "inputs": [], "buttons": []}
        elif self.form is not None and not self.closed and tag in ("input", "button"):
            self.form[tag + "s"].append(a)

    def handle_endtag(self, tag):
        if tag == "form" and self.form is not None:
            self.closed = True


def page_text(html):
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]*>", " ", html))).strip()[:400]


def fill_form(form, html):
    """What the user does: signs in (a password input) or approves (decision=approve)."""
    fields, kind = {}, None
    for i in form["inputs"]:
        kind_of = i.get("type", "text").lower()
        if not i.get("name") or "disabled" in i or kind_of in ("submit", "button", "image", "reset", "file"):
            continue
        if kind_of in ("checkbox", "radio") and "checked" not in i:
            continue
        fields[i["name"]] = i.get("value", "on" if kind_of in ("checkbox", "radio") else "")
        if kind_of == "password":
            fields[i["name"]], kind = env["OP_PASSWORD"], "sign-in"
        elif kind_of == "email" or i["name"] == "email":
            fields[i["name"]] = env["OP_EMAIL"]
    submits = [b for b in form["buttons"] if b.get("type", "submit").lower() == "submit"]
    submits += [i for i in form["inputs"] if i.get("type", "").lower() == "submit"]
    approve = next((b for b in submits if b.get("name") == "decision" and b.get("value") == "approve"), None)
    if approve:
        kind = "consent"
    check(kind, f"a form that is neither sign-in nor consent: {page_text(html)}")
    pressed = approve or (submits[0] if submits else None)
    if pressed and pressed.get("name"):
        fields[pressed["name"]] = pressed.get("value", "")
    return kind, fields


class Browser:
    def __init__(self):
        hooks = {"request": HOOKS["request"], "response": HOOKS["response"] + [self.loopback_is_secure]}
        self.http = httpx.Client(follow_redirects=False, timeout=15, event_hooks=hooks)

    def loopback_is_secure(self, _response):
        """Browsers treat http://127.0.0.1 and localhost as secure contexts and send Secure
        cookies there; httpx's cookie jar (http.cookiejar) would not: unmark them."""
        for cookie in self.http.cookies.jar:
            if cookie.domain.strip("[]").removesuffix(".local") in ("127.0.0.1", "::1", "localhost"):
                cookie.secure = False

    def navigate(self, url, stop):
        """Follows redirects (within the provider's origin) and fills the forms shown until a
        redirect to a URL starting with `stop`: returns it (never fetched) and the forms."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(ISSUER))
        pages = []
        res = self.http.get(url)
        for _ in range(20):
            if res.status_code in (301, 302, 303, 307, 308):
                location = res.headers.get("location")
                check(location, f"{last['request']} answered {res.status_code} without a Location")
                nxt = urljoin(url, location)
                if nxt.startswith(stop):
                    return nxt, pages
                check(nxt.startswith(origin + "/"), f"redirected to {nxt}, neither the provider nor {stop}")
                url = nxt
                res = self.http.get(url)
                continue
            check(res.status_code == 200, f"{last['request']} answered {res.status_code}: {page_text(res.text)}")
            parser = FormParser()
            parser.feed(res.text)
            check(parser.form, f"{url} shows a page without a form: {page_text(res.text)}")
            kind, fields = fill_form(parser.form, res.text)
            check(not pages or pages[-1] != kind, f"the {kind} form came back after submitting it: {page_text(res.text)}")
            pages.append(kind)
            url = urljoin(url, parser.form["action"] or url)
            # What a browser sends with a form submitted on the provider's own page.
            headers = {"Sec-Fetch-Site": "same-origin", "Origin": origin}
            if parser.form["method"] == "POST":
                res = self.http.post(url, data=fields, headers=headers)
            else:
                res = self.http.get(url.split("?")[0] + "?" + urlencode(fields), headers=headers)
        raise AssertionError(f"more than 20 redirects and forms from {url}")


# --- the flows --------------------------------------------------------------------------------
disc, keys = {}, None


def discovery():
    global keys
    with httpx.Client(timeout=15, event_hooks=HOOKS) as http:
        res = http.get(ISSUER.rstrip("/") + "/.well-known/openid-configuration")
        res.raise_for_status()
        disc.update(res.json())
        check(disc.get("issuer") == ISSUER, f"issuer is {disc.get('issuer')}, not {ISSUER}")
        for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                  "introspection_endpoint", "revocation_endpoint"):
            check(disc.get(k), f"the discovery document has no {k}")
        res = http.get(disc["jwks_uri"])
        res.raise_for_status()
        keys = JsonWebKey.import_key_set(res.json())
    return {"issuer": disc["issuer"], "jwks_keys": len(res.json().get("keys", []))}


def validate_id_token(id_token, client_id, nonce=None, access_token=None):
    """Authlib's checks of an ID token: signature (the algorithms discovery lists, never
    'none'), iss, aud, exp, iat, azp, nonce and at_hash when given."""
    algs = [a for a in disc.get("id_token_signing_alg_values_supported", ["RS256"]) if a != "none"]
    options = {"iss": {"essential": True, "value": ISSUER}, "aud": {"essential": True, "value": client_id}}
    claims = JsonWebToken(algs).decode(id_token, keys, claims_cls=CodeIDToken, claims_options=options,
                                       claims_params={"nonce": nonce, "client_id": client_id,
                                                      "access_token": access_token})
    claims.validate(leeway=5)
    return claims


def new_client(client_id, secret=None, method="none"):
    # leeway=0: Authlib refreshes a token on its own before a request when it expires within
    # `leeway` seconds (60 by default); here only the refresh step refreshes.
    return OAuth2Client(client_id, secret, token_endpoint_auth_method=method, revocation_endpoint_auth_method=method,
                        scope=SCOPE, redirect_uri=REDIRECT, code_challenge_method="S256", leeway=0,
                        timeout=15, event_hooks=HOOKS)


def code_flow(prefix, oauth):
    """Authorization in a new browser (forms), token (ID token validated), userinfo; returns
    token and claims. The consent page shows unless this user approved the client and
    scopes before (in an earlier run against the same server)."""
    flow, browser = {}, Browser()

    def authorize():
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        url, state = oauth.create_authorization_url(disc["authorization_endpoint"], nonce=nonce, code_verifier=verifier)
        back, pages = browser.navigate(url, REDIRECT)
        query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
        check("error" not in query, f"redirected back with error={query.get('error')}: {query.get('error_description')}")
        # RFC 9207: Authlib does not check iss in the response itself.
        check(query.get("iss") == ISSUER, f"the redirect back carries iss={query.get('iss')}, not {ISSUER}")
        check(pages[:1] == ["sign-in"], f"a new browser was not asked to sign in: went through {pages}")
        flow.update(back=back, state=state, nonce=nonce, verifier=verifier)
        return {"pages": pages}

    def token():
        tok = oauth.fetch_token(disc["token_endpoint"], authorization_response=flow["back"], state=flow["state"],
                                code_verifier=flow["verifier"])
        check(tok.get("id_token"), f"no id_token in the token response: {sorted(tok)}")
        claims = validate_id_token(tok["id_token"], oauth.client_id, flow["nonce"], tok["access_token"])
        for claim in ("sub", "email", "auth_time"):
            check(claim in claims, f"the ID token has no {claim}: {dict(claims)}")
        return {"sub": claims["sub"], "email": claims["email"], "refresh_token": "refresh_token" in tok,
                "_token": tok, "_claims": claims}

    def userinfo():
        res = oauth.get(disc["userinfo_endpoint"])
        res.raise_for_status()
        info = res.json()
        check(info.get("sub") == flow["claims"]["sub"], f"userinfo's sub is {info.get('sub')}, not the ID token's")
        check(str(info.get("email", "")).lower() == env["OP_EMAIL"].lower(), f"userinfo's email is {info.get('email')}")
        return {"sub": info["sub"], "email": info["email"]}

    step(f"{prefix}.authorize", authorize)
    t = step(f"{prefix}.token", token)
    flow["claims"] = t["_claims"]
    step(f"{prefix}.userinfo", userinfo)
    return t["_token"], t["_claims"]


step("discovery", discovery)

conf = new_client(env["OP_CONFIDENTIAL_ID"], env["OP_CONFIDENTIAL_SECRET"], "client_secret_post")
token, claims = code_flow("confidential", conf)


def refresh():
    check(token.get("refresh_token"), "no refresh_token with offline_access")
    new = conf.refresh_token(disc["token_endpoint"], refresh_token=token["refresh_token"])
    check(new.get("refresh_token") and new["refresh_token"] != token["refresh_token"], "no new refresh_token")
    # Reuse of the retired token is not tried: within 10 s the server answers it with the
    # current one (retries converge).
    if new.get("id_token"):
        again = validate_id_token(new["id_token"], conf.client_id, access_token=new["access_token"])
        check(again["sub"] == claims["sub"], f"the refreshed ID token's sub is {again['sub']}")
    return {"rotated": True, "id_token": "id_token" in new, "_token": new}


refreshed = step("confidential.refresh", refresh)["_token"]


def introspect(tok, hint, active):
    def run():
        res = conf.introspect_token(disc["introspection_endpoint"], token=tok, token_type_hint=hint)
        res.raise_for_status()
        r = res.json()
        check(r.get("active") is active, f"active is {r.get('active')}, expected {active}: {r}")
        if active:
            check(r.get("sub") == claims["sub"] and r.get("client_id") == conf.client_id, f"sub/client_id: {r}")
        return {"active": r["active"]}
    return run


def revoke():
    res = conf.revoke_token(disc["revocation_endpoint"], token=refreshed["refresh_token"], token_type_hint="refresh_token")
    check(res.status_code == 200, f"revocation answered {res.status_code}")


step("confidential.introspect-access", introspect(refreshed["access_token"], "access_token", True))
step("confidential.revoke-refresh", revoke)
step("confidential.introspect-revoked-refresh", introspect(refreshed["refresh_token"], "refresh_token", False))

# The public client: PKCE without a secret, a new browser.
code_flow("public", new_client(env["OP_PUBLIC_ID"]))

if env.get("OP_DYNAMIC") == "1":
    def register():
        check(disc.get("registration_endpoint"), "the discovery document has no registration_endpoint")
        with httpx.Client(timeout=15, event_hooks=HOOKS) as http:
            res = http.post(disc["registration_endpoint"], json={
                "client_name": "tessera oidc-rp (authlib)", "redirect_uris": [REDIRECT], "response_types": ["code"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "client_secret_post", "scope": SCOPE})
        check(res.status_code == 201, f"registration answered {res.status_code}, not 201")
        reg = res.json()
        check(reg.get("client_id"), f"no client_id in {reg}")
        return {"client_id": reg["client_id"], "token_endpoint_auth_method": reg.get("token_endpoint_auth_method"),
                "_reg": reg}

    reg = step("dynamic.register", register)["_reg"]
    method = reg.get("token_endpoint_auth_method", "client_secret_basic")
    code_flow("dynamic", new_client(reg["client_id"], reg.get("client_secret"), method))

step("done", lambda: {})
