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

-- A script that counts answers other than 200 itself (wrk's status errors are those
-- >= 400 only) keeps the counts in its thread's globals bench_non200 and
-- bench_exhausted (requests sent after its data ran out); they are added up here.
function done(summary, latency, requests)
   local e = summary.errors
   local extra, counted, non200, exhausted = "", false, 0, 0
   for _, thread in ipairs(threads) do
      local n = thread:get("bench_non200")
      if n then
         counted = true
         non200 = non200 + n
         exhausted = exhausted + (thread:get("bench_exhausted") or 0)
      end
   end
   if counted then
      extra = string.format(",\"non200\":%d,\"exhausted\":%d", non200, exhausted)
   end
   io.write(string.format(
      "BENCH_RESULT {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,"
         .. "\"max_us\":%d,\"mean_us\":%.1f,\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d%s}\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout, extra))
end
