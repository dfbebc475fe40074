-- POST /v1/auth/passkeys/authentication/verify with pre-signed assertions, each body
-- once: an assertion answers a challenge that can be used once. The harness runs one
-- connection per thread and writes each thread a file of its own, $BENCH_PASSKEY.<thread>,
-- one JSON body a line: its users' assertions in the order their sign counters rise, so
-- one user's assertions reach the server one after another. Answers other than 200 are
-- counted as errors (bench_non200, see common.lua); once the bodies run out, each request
-- sends one that cannot succeed, counted in bench_exhausted too.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs, n, i, spent = {}, 0, 0, nil
local headers = { ["Content-Type"] = "application/json" }
bench_non200, bench_exhausted = 0, 0

function init(args)
   local path = os.getenv("BENCH_PASSKEY")
   assert(path, "BENCH_PASSKEY is not set")
   for body in io.lines(path .. "." .. thread_id) do
      if body ~= "" then
         table.insert(reqs, wrk.format("POST", wrk.path, headers, body))
      end
   end
   n = #reqs
   assert(n > 0, "no assertions for this thread")
   spent = wrk.format("POST", wrk.path, headers, '{"challenge_id":"exhausted","credential":{}}')
end

function request()
   i = i + 1
   if i <= n then
      local req = reqs[i]
      reqs[i] = nil
      return req
   end
   bench_exhausted = bench_exhausted + 1
   return spent
end

function response(status, headers, body)
   if status ~= 200 then
      bench_non200 = bench_non200 + 1
   end
end
