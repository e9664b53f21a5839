-- wrk script: POST market BUY orders, each with the token of a random bench user
-- (BENCH_TOKENS is a file of tokens, one a line; a file with one token is the hot-account case).
-- BENCH_AUTH=alpaca: each line is "key_id:secret", sent as Alpaca's APCA-API-KEY-ID/-SECRET-KEY
-- headers (the /v2/orders leg).
-- Counts every non-2xx answer and prints one "BENCH_JSON {...}" line at the end for run.py
-- (report.lua, beside this script).
dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "report.lua")

function init(args)
  read_tokens()
  path = os.getenv("BENCH_PATH") or "/api/v1/orders/"
  body = os.getenv("BENCH_BODY") or '{"asset_id": "BTC", "order_type": "BUY", "quantity": "0.0001"}'
  auth = os.getenv("BENCH_AUTH") or "token"
end

function request()
  local token = random_token()
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
