-- wrk script: POST a fixed body, optionally with an Authorization header.
--   WRK_BODY='{"a": 1}' WRK_AUTH='Simple KEY' wrk -t1 -c8 -d10s --latency -s post.lua URL
-- Or a body read from a file (binary allowed), its content type, and one more header, for the
-- Open Inference Protocol's binary tensor extension:
--   WRK_BODY_FILE=body.bin WRK_CONTENT_TYPE=application/octet-stream \
--   WRK_HEADER_NAME=Inference-Header-Content-Length WRK_HEADER_VALUE=123 wrk ... -s post.lua URL
-- At the end it prints one line "WRK_JSON {...}" with exact figures (latencies in
-- microseconds), which benchmarks/serving.py prefers to wrk's rounded text report.

wrk.method = "POST"
local path = os.getenv("WRK_BODY_FILE")
if path ~= nil and path ~= "" then
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
else
  wrk.body = os.getenv("WRK_BODY") or "{}"
end
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json"
local auth = os.getenv("WRK_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
local name = os.getenv("WRK_HEADER_NAME")
if name ~= nil and name ~= "" then
  wrk.headers[name] = os.getenv("WRK_HEADER_VALUE")
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
