-- Shared by get.lua and orders.lua (each loads it with dofile, by the path of the script
-- itself): the bench users' tokens, and counting every non-2xx answer into one
-- "BENCH_JSON {...}" line at the end for run.py.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

-- The lines of BENCH_TOKENS into the global `tokens`; seeds math.random per thread and zeroes
-- this thread's error count. Each script's init() calls it first.
function read_tokens()
  tokens = {}
  local f = assert(io.open(os.getenv("BENCH_TOKENS"), "r"))
  for line in f:lines() do
    if #line > 0 then table.insert(tokens, line) end
  end
  f:close()
  math.randomseed(os.time() * 1000 + id)
  non2xx = 0
  first_error = ""
end

function random_token()
  return tokens[math.random(#tokens)]
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
