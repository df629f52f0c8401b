-- scale.lua: wrk script for bench/scale.py. PUTs every one of G groups exactly once
-- (count-bounded), each with a body of M series, then holds its connections idle.
--   wrk -t2 -c64 -d600s -s scale.lua http://127.0.0.1:PORT -- groups=500000 series=20 threads=2
-- Group g is /metrics/job/pgwb_scale_<g/10>/instance/i<g%10>; thread t owns groups t, t+T, ...
-- With series=20 the body is exactly pgwbench's preload body (../shared/bench/pgw.lua), so the
-- figures compare with its scale rows; otherwise a gauge family of M-1 series plus the
-- pgwb_job_last_success_timestamp_seconds gauge (= 1.7e9 + g, which scale.py checks).
-- Each thread prints "SCALE_START <tid>" at its first request and "SCALE_DONE <tid> <responses>
-- <non-2xx>" once all its groups were acknowledged; scale.py then ends wrk with SIGINT.
-- done() prints "SCALE_RESULT {json}".

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

local function fmt(v)
   if v == math.floor(v) then return string.format("%d", v) end
   return string.format("%.6f", v)
end

-- pgw.lua's preload_body, byte for byte
local function body20(g)
   local t = {}
   t[#t+1] = "# HELP pgwb_job_duration_seconds Duration of the job phases.\n"
   t[#t+1] = "# TYPE pgwb_job_duration_seconds gauge\n"
   for i = 0, 4 do
      t[#t+1] = string.format('pgwb_job_duration_seconds{phase="p%d"} %s\n', i, fmt((g % 89) + i * 0.5))
   end
   t[#t+1] = "# HELP pgwb_job_records_total Records processed per phase.\n"
   t[#t+1] = "# TYPE pgwb_job_records_total counter\n"
   for i = 0, 4 do
      t[#t+1] = string.format('pgwb_job_records_total{phase="p%d"} %d\n', i, g * 5 + i)
   end
   t[#t+1] = "# HELP pgwb_job_item_seconds Time per processed item.\n"
   t[#t+1] = "# TYPE pgwb_job_item_seconds histogram\n"
   local les = {"0.01", "0.1", "1", "10", "100", "+Inf"}
   for i, le in ipairs(les) do
      t[#t+1] = string.format('pgwb_job_item_seconds_bucket{le="%s"} %d\n', le, i * 10)
   end
   t[#t+1] = string.format("pgwb_job_item_seconds_sum %s\n", fmt(g + 0.5))
   t[#t+1] = "pgwb_job_item_seconds_count 60\n"
   t[#t+1] = "# HELP pgwb_job_last_success_timestamp_seconds Last successful run.\n"
   t[#t+1] = "# TYPE pgwb_job_last_success_timestamp_seconds gauge\n"
   t[#t+1] = string.format("pgwb_job_last_success_timestamp_seconds %d\n", 1700000000 + g)
   t[#t+1] = "# TYPE pgwb_job_up gauge\npgwb_job_up 1\n"
   return table.concat(t)
end

local function bodyM(g, m)
   local t = {}
   if m > 1 then
      t[#t+1] = "# HELP pgwb_scale_value A value per series.\n# TYPE pgwb_scale_value gauge\n"
      for i = 0, m - 2 do
         t[#t+1] = string.format('pgwb_scale_value{i="%d"} %d\n', i, g + i)
      end
   end
   t[#t+1] = "# HELP pgwb_job_last_success_timestamp_seconds Last successful run.\n"
   t[#t+1] = "# TYPE pgwb_job_last_success_timestamp_seconds gauge\n"
   t[#t+1] = string.format("pgwb_job_last_success_timestamp_seconds %d\n", 1700000000 + g)
   return table.concat(t)
end

function init(args)
   local o = parse_args(args)
   local groups = tonumber(o.groups or "1000")
   local series = tonumber(o.series or "20")
   local T = tonumber(o.threads or "2")
   local first = tonumber(o.first or "0")
   local hdrs = { ["Content-Type"] = "text/plain; version=0.0.4" }
   tid = tid or 0
   reqs = {}
   local g = first + tid
   while g < first + groups do
      local b = (series == 20) and body20(g) or bodyM(g, series)
      local path = string.format("/metrics/job/pgwb_scale_%d/instance/i%d", math.floor(g / 10), g % 10)
      reqs[#reqs+1] = wrk.format("PUT", path, hdrs, b)
      g = g + T
   end
   nown = #reqs
   nreq = 0
   responses = 0
   bad = 0
   done_flag = 0
   verify_call = (tid == 0)
end

function request()
   if verify_call then
      verify_call = false
      return reqs[1]
   end
   local k = nreq
   nreq = k + 1
   if k == 0 then io.stdout:write("SCALE_START " .. tid .. "\n"); io.stdout:flush() end
   if k >= nown then k = nown - 1 end   -- past the end: repeat the last (idempotent) PUT
   return reqs[k + 1]
end

function delay()
   if nreq >= nown then return 3600000 end
   return 0
end

function response(status, headers, body)
   responses = responses + 1
   if status < 200 or status > 299 then bad = bad + 1 end
   if nreq >= nown and responses >= nreq and done_flag == 0 then
      done_flag = 1
      io.stdout:write("SCALE_DONE " .. tid .. " " .. responses .. " " .. bad .. "\n")
      io.stdout:flush()
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.stdout:write(string.format(
      'SCALE_RESULT {"requests":%d,"err_connect":%d,"err_read":%d,"err_write":%d,' ..
      '"err_status":%d,"err_timeout":%d,"lat_p50_us":%d,"lat_p99_us":%d}\n',
      summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99)))
   io.stdout:flush()
end
