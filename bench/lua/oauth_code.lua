-- The authorization code flow of a confidential client at tessera's provider (SPEC
-- §5.12), two requests a round: GET /oauth/authorize with the browser's session cookie
-- (tessera_op, consent given before: the answer is a 303 straight to the redirect URI
-- with a fresh code), then POST /oauth/token exchanging that code (HTTP Basic, PKCE
-- verifier). One connection per thread (the harness runs as many threads as
-- connections), so the thread's state is its connection's. Lines of $BENCH_OAUTH_BROWSERS:
-- "cookie verifier challenge", one browser (a user signed in at the provider) per
-- connection. $BENCH_OAUTH_CLIENT is the client_id, $BENCH_OAUTH_BASIC its Basic
-- credentials, $BENCH_OAUTH_REDIRECT the redirect URI, form-encoded. Answers other than
-- a 303 with a code (authorize) or a 200 with tokens (token) are counted as errors
-- (bench_non200, see common.lua); each kind's latencies are in bench_us_<kind>.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local authorize, token_headers, token_body, code, sent, started
bench_non200, bench_exhausted = 0, 0
bench_kinds, bench_us_authorize, bench_us_token = "authorize token", {}, {}
local latencies = { authorize = bench_us_authorize, token = bench_us_token }

function init(args)
   local line = my_lines("BENCH_OAUTH_BROWSERS")[1]
   assert(line, "no browser for this thread")
   local cookie, verifier, challenge = line:match("^(%S+) (%S+) (%S+)$")
   local redirect = os.getenv("BENCH_OAUTH_REDIRECT")
   authorize = wrk.format("GET", "/oauth/authorize?response_type=code&client_id=" .. os.getenv("BENCH_OAUTH_CLIENT")
      .. "&redirect_uri=" .. redirect .. "&scope=openid%20offline_access&state=s&code_challenge=" .. challenge
      .. "&code_challenge_method=S256", { ["Cookie"] = "tessera_op=" .. cookie })
   token_headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = "Basic " .. os.getenv("BENCH_OAUTH_BASIC"),
   }
   token_body = "&code_verifier=" .. verifier .. "&redirect_uri=" .. redirect
end

function request()
   started = bench_clock_us()
   if code then
      local body = "grant_type=authorization_code&code=" .. code .. token_body
      code, sent = nil, "token"
      return wrk.format("POST", "/oauth/token", token_headers, body)
   end
   sent = "authorize"
   return authorize
end

function response(status, headers, body)
   local took = bench_clock_us() - started
   local ok = false
   if sent == "authorize" then
      local to = headers["location"] or headers["Location"]
      code = status == 303 and to and to:match("[?&]code=([^&]+)") or nil
      ok = code ~= nil
   elseif sent == "token" then
      ok = status == 200 and body:find('"refresh_token"', 1, true) ~= nil
   end
   if ok then
      table.insert(latencies[sent], took)
   else
      bench_non200 = bench_non200 + 1
   end
end
