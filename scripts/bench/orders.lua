-- wrk script: POST market BUY orders, each with the token of a random bench user
-- (BENCH_TOKENS is a file of tokens, one a line; a file with one token is the hot-account case).
-- BENCH_AUTH=alpaca: each line is "key_id:secret", sent as Alpaca's APCA-API-KEY-ID/-SECRET-KEY
-- headers (the /v2/orders leg, SPEC 12).
-- Counts every non-2xx answer and prints one "BENCH_JSON {...}" line at the end for run.py.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  local f = assert(io.open(os.getenv("BENCH_TOKENS"), "r"))
  for line in f:lines() do
    if #line > 0 then table.insert(tokens, line) end
  end
  f:close()
  math.randomseed(os.time() * 1000 + id)
  path = os.getenv("BENCH_PATH") or "/api/v1/orders/"
  body = os.getenv("BENCH_BODY") or '{"asset_id": "BTC", "order_type": "BUY", "quantity": "0.0001"}'
  auth = os.getenv("BENCH_AUTH") or "token"
  non2xx = 0
  first_error = ""
end

function request()
  local token = tokens[math.random(#tokens)]
  local headers = {["Content-Type"] = "application/json", ["Accept"] = "application/json"}
  if auth == "alpaca" then
    local key_id, secret = string.match(token, "^([^:]+):(.+)$")
    headers["APCA-API-KEY-ID"] = key_id
    headers["APCA-API-SECRET-KEY"] = secret
  else
    headers["Authorization"] = "Token " .. token
  end
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, resp_body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_error == "" then first_error = status .. " " .. string.sub(resp_body or "", 1, 300) end
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local bad, first = 0, ""
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    local fe = t:get("first_error")
    if fe and fe ~= "" and first == "" then first = fe end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "timeouts": %d, "status_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "mean_us": %.1f, "first_error": %s}\n',
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    json_string(first)))
end
