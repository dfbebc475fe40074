-- A plain GET of the URL given to wrk (the floor: GET /health).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
