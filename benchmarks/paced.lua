-- wrk script: POST a fixed JSON body at a paced rate, optionally with an Authorization header.
--   WRK_BODY='"world"' WRK_AUTH='Simple KEY' WRK_DELAY_MS=40 wrk -t1 -c4 -d10s -s paced.lua URL
-- Each connection waits WRK_DELAY_MS after every response before its next request, so
-- c connections send about c * 1000 / (WRK_DELAY_MS + latency) requests a second. Prints the
-- same "WRK_JSON {...}" line as post.lua (latencies in microseconds).

wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("WRK_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")

function delay()
  return pause
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
