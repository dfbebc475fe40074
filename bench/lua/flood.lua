-- POST /v1/auth/password-reset with a new address every time: $BENCH_RUN_ID, the thread
-- and a counter (for the flood scenario: a million distinct addresses, each a key of
-- the per-address limit).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local run_id = os.getenv("BENCH_RUN_ID") or "run"
local headers = { ["Content-Type"] = "application/json" }
local i = 0

function request()
   i = i + 1
   local body = string.format('{"email":"flood-%s-%d-%d@bench.example"}', run_id, thread_id, i)
   return wrk.format("POST", "/v1/auth/password-reset", headers, body)
end
