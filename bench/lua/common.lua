-- Shared by every scenario: thread numbering and one machine-readable summary line.
-- bench/harness.py reads the line that starts with BENCH_RESULT.

local counter = 0
local threads = {}

-- Numbers each wrk thread (0, 1, ...) so a thread can take its share of a data file. The
-- thread count comes from the harness (BENCH_THREADS): wrk may start a thread's init
-- before it has called setup for the next one, so counting here would give the first
-- thread a share of every line, the next thread's too.
function setup(thread)
   thread:set("thread_id", counter)
   thread:set("thread_count", tonumber(os.getenv("BENCH_THREADS")) or 1)
   counter = counter + 1
   table.insert(threads, thread)
end

-- Lines of a file named by an environment variable; the first thread's share is
-- lines 1, 1 + n, ..., the second's 2, 2 + n, ...
function my_lines(env_name)
   local path = os.getenv(env_name)
   assert(path, env_name .. " is not set")
   local mine, i = {}, 0
   for line in io.lines(path) do
      if line ~= "" then
         if i % thread_count == thread_id then
            table.insert(mine, line)
         end
         i = i + 1
      end
   end
   return mine
end

-- Microseconds of a monotonic clock (LuaJIT's FFI, clock_gettime(CLOCK_MONOTONIC)), for
-- a script that times its kinds of request apart; declared on first use.
local clock_ts, clock_c
function bench_clock_us()
   if not clock_ts then
      local ffi = require("ffi")
      ffi.cdef([[
         typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
         int clock_gettime(int clk_id, bench_timespec *tp);
      ]])
      clock_ts, clock_c = ffi.new("bench_timespec"), ffi.C
   end
   clock_c.clock_gettime(1, clock_ts)
   return tonumber(clock_ts.tv_sec) * 1000000 + math.floor(tonumber(clock_ts.tv_nsec) / 1000)
end

-- The nearest-rank percentile of a sorted list.
local function percentile(sorted, q)
   local i = math.ceil(q / 100 * #sorted)
   return sorted[math.max(1, math.min(#sorted, i))]
end

-- A script that counts answers other than 200 itself (wrk's status errors are those
-- >= 400 only) keeps the counts in its thread's globals bench_non200 and
-- bench_exhausted (requests sent after its data ran out); they are added up here.
-- A script that sends several kinds of request names them in its thread's global
-- bench_kinds ("authorize token") and keeps each kind's latencies (us, of its successful
-- answers) in the global bench_us_<kind>, a list (thread:get crashes wrk 4.1 on a table of
-- tables): each kind's count and percentiles go in the line as "kinds". They are of the
-- latencies as measured: wrk's own (the line's p50_us...) have its correction for
-- coordinated omission (stats_correct: a latency of at least twice the run's time per
-- request and connection adds samples), which lifts the tail of a run on few connections.
function done(summary, latency, requests)
   local e = summary.errors
   local extra, counted, non200, exhausted = "", false, 0, 0
   local kinds = {}
   for _, thread in ipairs(threads) do
      local n = thread:get("bench_non200")
      if n then
         counted = true
         non200 = non200 + n
         exhausted = exhausted + (thread:get("bench_exhausted") or 0)
      end
      local names = thread:get("bench_kinds")
      if names then
         for kind in names:gmatch("%S+") do
            kinds[kind] = kinds[kind] or {}
            for _, us in ipairs(thread:get("bench_us_" .. kind) or {}) do
               table.insert(kinds[kind], us)
            end
         end
      end
   end
   if counted then
      extra = string.format(",\"non200\":%d,\"exhausted\":%d", non200, exhausted)
   end
   local parts = {}
   for kind, samples in pairs(kinds) do
      table.sort(samples)
      if #samples > 0 then
         table.insert(parts, string.format(
            "\"%s\":{\"count\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"max_us\":%d}", kind, #samples,
            percentile(samples, 50), percentile(samples, 90), percentile(samples, 99), samples[#samples]))
      else
         table.insert(parts, string.format("\"%s\":{\"count\":0}", kind))
      end
   end
   if next(kinds) then
      extra = extra .. ",\"kinds\":{" .. table.concat(parts, ",") .. "}"
   end
   io.write(string.format(
      "BENCH_RESULT {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,"
         .. "\"max_us\":%d,\"mean_us\":%.1f,\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d%s}\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout, extra))
end
