-- GET a random session trace, correlation trace or trace page of the seeded data
-- (scripts/seed-event-logs.sql). TRACE_KIND = session | metrics | correlation | page.
local kind = "session"
local sessions = 1000

function init(args)
  kind = os.getenv("TRACE_KIND") or "session"
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local s = math.random(0, sessions - 1)
  if kind == "session" then
    return wrk.format("GET", "/api/v1/traces/sessions/bench-s-" .. s)
  elseif kind == "metrics" then
    return wrk.format("GET", "/api/v1/traces/sessions/bench-s-" .. s .. "/metrics")
  elseif kind == "correlation" then
    -- Correlation ids are block * 1000 + k (100 blocks, k < 500): see scripts/seed-event-logs.sql.
    return wrk.format("GET", "/api/v1/traces/correlation/bench-c-" .. (math.random(0, 99) * 1000 + math.random(0, 499)))
  else
    return wrk.format("GET", "/dashboard/traces/session/bench-s-" .. s)
  end
end

function done(summary, latency, requests)
  -- done() runs in wrk's main Lua state, where init() did not run.
  kind = os.getenv("TRACE_KIND") or "session"
  local s = summary.duration / 1e6
  io.write(string.format("RESULT kind=%s requests=%d errors=%d non2xx=%d rps=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f\n",
      kind, summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      summary.errors.status, summary.requests / s,
      latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
