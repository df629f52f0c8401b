-- accumulate.lua: wrk script for bench/accumulate.py. Pushes one serverless-style body (a
-- counter with 3 series, a classic histogram with 11 buckets, a gauge) with PUT to G groups
-- in turn, under a route prefix: "" replaces the group, "/accumulate" adds to it.
--   wrk -t2 -c32 -d10s -s accumulate.lua http://127.0.0.1:PORT -- groups=1000 route=/accumulate
-- done() prints "ACCB_RESULT {json}" with the requests, non-2xx answers and errors.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local function parse_args(args)
   local o = {}
   local i = 0
   while args[i] ~= nil do
      local k, v = args[i]:match("^([%w_]+)=(.*)$")
      if k then o[k] = v end
      i = i + 1
   end
   return o
end

local function body()
   local t = {}
   t[#t+1] = "# HELP accb_invocations_total Invocations.\n# TYPE accb_invocations_total counter\n"
   for _, k in ipairs({"ok", "retry", "error"}) do
      t[#t+1] = string.format('accb_invocations_total{outcome="%s"} 1\n', k)
   end
   t[#t+1] = "# HELP accb_duration_seconds Handling time.\n# TYPE accb_duration_seconds histogram\n"
   local bounds = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"}
   for _, b in ipairs(bounds) do
      t[#t+1] = string.format('accb_duration_seconds_bucket{le="%s"} 1\n', b)
   end
   t[#t+1] = 'accb_duration_seconds_bucket{le="+Inf"} 1\n'
   t[#t+1] = "accb_duration_seconds_sum 0.003\naccb_duration_seconds_count 1\n"
   t[#t+1] = "# HELP accb_batch_size Items in the batch.\n# TYPE accb_batch_size gauge\naccb_batch_size 42\n"
   return table.concat(t)
end

function init(args)
   local o = parse_args(args)
   local groups = tonumber(o.groups or "1000")
   local route = o.route or ""
   local T = tonumber(o.threads or "2")
   local b = body()
   reqs = {}
   for g = tid, groups - 1, T do
      local path = string.format("%s/metrics/job/accb/instance/i%d", route, g)
      reqs[#reqs + 1] = wrk.format("PUT", path, {["Content-Type"] = "text/plain; version=0.0.4"}, b)
   end
   k = 0
   non2xx = 0
end

function request()
   k = k + 1
   return reqs[(k % #reqs) + 1]
end

function response(status, headers, body)
   if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
   local bad = 0
   for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
   io.write(string.format(
      'ACCB_RESULT {"requests": %d, "seconds": %.3f, "non2xx": %d, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f}\n',
      summary.requests, summary.duration / 1e6, bad,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
