-- POST /hash with a raw body read from $BODY_FILE (default: 1 KiB of text).
function init(args)
  local path = os.getenv("BODY_FILE")
  if path then
    local f = assert(io.open(path, "rb"))
    body = f:read("*a")
    f:close()
  else
    body = string.rep("x", 1024)
  end
end

function request()
  return wrk.format("POST", "/api/v1/metadata-stamping/hash",
      {["Content-Type"] = "application/octet-stream"}, body)
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d rps=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
      summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      summary.errors.status, summary.requests / s,
      latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
