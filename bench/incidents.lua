-- wrk script for bench/incidents.py: `wrk -s bench/incidents.lua <url> -- declare|get`.
--
-- "declare" POSTs a new incident per request with a realistic severity/service mix;
-- "get" repeats the URL's GET. Either way done() prints one JSON line of results that
-- bench/incidents.py parses (latencies in microseconds, as wrk keeps them).

local mode = "get"
local counter = 0

-- Weighted like the loaded data: few P0s, mostly P2/P3.
local severities = { "P0", "P1", "P1", "P2", "P2", "P2", "P3", "P3", "P3", "P3" }
local services = { '["api"]', '["database"]', '["api","database"]', "[]" }

function init(args)
  mode = args[1] or "get"
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  if mode == "declare" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  if mode ~= "declare" then
    return wrk.format()
  end
  counter = counter + 1
  local body = string.format(
    '{"title":"Bench incident %d","severity":"%s","services":%s,'
      .. '"description":"Latency above SLO on the checkout path","tags":["bench"]}',
    counter,
    severities[math.random(#severities)],
    services[math.random(#services)]
  )
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"timeouts":%d,"bad_status":%d,'
      .. '"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean
  ))
end
