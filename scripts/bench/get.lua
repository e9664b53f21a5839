-- wrk script: GET one path (BENCH_PATH, e.g. /api/v1/portfolio/ or a deep history cursor) as the
-- user whose token is in BENCH_TOKENS (first line; several lines: a random one per request).
-- Counts every non-2xx answer and prints one "BENCH_JSON {...}" line at the end for run.py
-- (report.lua, beside this script).
dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "report.lua")

function init(args)
  read_tokens()
  path = assert(os.getenv("BENCH_PATH"), "BENCH_PATH is required")
end

function request()
  return wrk.format("GET", path, {
    ["Authorization"] = "Token " .. random_token(),
    ["Accept"] = "application/json",
  }, nil)
end
