-- wrk script for bench/ingest.py: PagerDuty Events API v2 trigger events, one per request.
--
--   wrk -s bench/ingest_pd.lua http://127.0.0.1:8080/v2/enqueue \
--       -- <run tag> <routing key> [severities, comma-separated: error,warning,info]
--
-- Every request is a new alert: its dedup_key is "<run tag>-<thread>-<counter>", unique across
-- wrk's threads and, with a fresh tag per run, across runs. Summary, source, component, class
-- and custom_details vary the way a database monitor's events do; the severity is drawn from
-- the list given, by default error, warning and info (never "critical": the example routes
-- would declare an incident for every event).
-- done() prints one JSON line, in the format of bench/incidents.lua, that bench/ingest.py
-- parses.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local tag = "run"
local routing_key = ""
local counter = 0

local hosts = {
  "db-01.prod.example.test", "db-02.prod.example.test", "db-03.prod.example.test",
  "db-04.prod.example.test", "pgbouncer-01.prod.example.test", "pgbouncer-02.prod.example.test",
}
local regions = { "eu-west-1", "eu-central-1", "us-east-1" }
-- { summary format (one %s: the host), component, class, metric name, metric unit }
local checks = {
  { "Replication lag above 30 s on %s", "postgres", "replication", "lag_seconds", 30 },
  { "Disk usage above 90 percent on %s", "filesystem", "disk", "used_percent", 90 },
  { "Connection pool nearly exhausted on %s", "pgbouncer", "connections", "waiting_clients", 50 },
  { "Slow queries: p99 above 2 s on %s", "postgres", "latency", "p99_ms", 2000 },
  { "Autovacuum behind on the largest tables on %s", "postgres", "maintenance", "dead_tuples", 1000000 },
}
local severities = { "error", "warning", "info" }

function init(args)
  tag = args[1] or "run"
  routing_key = args[2] or ""
  if args[3] then
    severities = {}
    for severity in string.gmatch(args[3], "[^,]+") do
      table.insert(severities, severity)
    end
  end
  math.randomseed(os.time() + (id or 0) * 7919 + math.floor(os.clock() * 1000000))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local check = checks[math.random(#checks)]
  local host = hosts[math.random(#hosts)]
  local body = string.format(
    '{"routing_key":"%s","event_action":"trigger","dedup_key":"%s-%d-%d",'
      .. '"client":"Prometheus","client_url":"https://prometheus.example.test/alerts",'
      .. '"payload":{"summary":"%s","source":"%s","severity":"%s","timestamp":"%s",'
      .. '"component":"%s","group":"prod-databases","class":"%s",'
      .. '"custom_details":{"%s":%d,"threshold":%d,"region":"%s","team":"platform",'
      .. '"runbook":"https://runbooks.example.test/database/%s",'
      .. '"query":"max_over_time(pg_%s[5m])"}}}',
    routing_key, tag, id or 0, counter,
    string.format(check[1], host), host, severities[math.random(#severities)],
    os.date("!%Y-%m-%dT%H:%M:%SZ"),
    check[2], check[3],
    check[4], check[5] + math.random(check[5]), check[5], regions[math.random(#regions)],
    check[3], check[4]
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
