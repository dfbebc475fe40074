-- POST /v1/users with a new address every time: $BENCH_RUN_ID (new for every wrk run,
-- warm-up included), the thread and a counter.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local run_id = os.getenv("BENCH_RUN_ID") or "run"
local password = os.getenv("BENCH_PASSWORD")
local headers = { ["Content-Type"] = "application/json" }
local i = 0

function request()
   i = i + 1
   local body = string.format('{"email":"signup-%s-%d-%d@bench.example","password":"%s","full_name":"Bench User"}',
      run_id, thread_id, i, password)
   return wrk.format("POST", "/v1/users", headers, body)
end
