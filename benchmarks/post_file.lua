-- wrk script: POST a fixed body read from a file (binary allowed), with a content type and
-- optional headers, for the Open Inference Protocol's binary tensor extension.
--   WRK_BODY_FILE=body.bin WRK_CONTENT_TYPE=application/octet-stream \
--   WRK_HEADER_NAME=Inference-Header-Content-Length WRK_HEADER_VALUE=123 WRK_AUTH='Simple KEY' \
--   wrk -t1 -c8 -d10s --latency -s post_file.lua URL
-- It prints the same "WRK_JSON {...}" line as post.lua.

local file = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/octet-stream"
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
