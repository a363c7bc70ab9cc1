-- POST /api/v1/workflows?wait=true with unique ~1 KiB content (every request runs a whole workflow).
local pad = string.rep("lorem ipsum dolor sit amet ", 38)
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  run = os.getenv("RUN_ID") or tostring(os.time())
end

function request()
  counter = counter + 1
  local body = '{"content":"' .. run .. "-" .. tid .. "-" .. counter .. " " .. pad .. '","namespace":"load.workflow"}'
  return wrk.format("POST", "/api/v1/workflows?wait=true", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d rps=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
      summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      summary.errors.status, summary.requests / s,
      latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
