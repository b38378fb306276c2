-- wrk script for bench/ingest.py: Alertmanager webhooks (version 4) of many firing alerts.
--
--   wrk -s bench/ingest_am.lua http://127.0.0.1:8080/api/v1/ingest/<key> -- <run tag> <alerts>
--
-- Each request is one notification as Alertmanager sends it with group_by [alertname, cluster]:
-- one alertname and cluster per payload, <alerts> (default 100) firing alerts on different
-- instances, each with a fingerprint never used before ("<run tag><thread><counter><index>"),
-- so every alert is a new one. Labels alertname/cluster/instance/job/severity, severity
-- "error" (the example routes declare incidents for "critical" and lower "warning" to low
-- urgency). done() prints one JSON line, in the format of bench/incidents.lua.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local tag = "run"
local per_request = 100
local counter = 0

local alertnames = {
  { "HighRequestLatency", "p99 request latency above 1 s" },
  { "HighErrorRate", "5xx ratio above 5 percent" },
  { "PodCrashLooping", "container restarted more than 3 times in 10 minutes" },
  { "NodeMemoryPressure", "available memory below 5 percent" },
  { "KubeJobFailed", "job failed to complete" },
  { "TargetDown", "scrape target unreachable" },
  { "CertificateExpiringSoon", "TLS certificate expires in less than 7 days" },
  { "QueueBacklogGrowing", "consumer lag growing for 15 minutes" },
}
local clusters = 40

function init(args)
  tag = args[1] or "run"
  per_request = tonumber(args[2] or "100")
  math.randomseed(os.time() + (id or 0) * 7919 + math.floor(os.clock() * 1000000))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local pick = alertnames[math.random(#alertnames)]
  local name, text = pick[1], pick[2]
  local cluster = string.format("prod-%02d", math.random(clusters))
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local parts = {}
  for i = 1, per_request do
    local instance = string.format("10.%d.%d.%d:9100", math.random(255), math.random(255), i)
    parts[i] = string.format(
      '{"status":"firing","labels":{"alertname":"%s","cluster":"%s","instance":"%s",'
        .. '"job":"node","severity":"error"},'
        .. '"annotations":{"summary":"%s on %s","description":"%s on %s in %s.",'
        .. '"runbook_url":"https://runbooks.example.test/%s"},'
        .. '"startsAt":"%s","endsAt":"0001-01-01T00:00:00Z",'
        .. '"generatorURL":"http://prometheus.example.test:9090/graph?g0.expr=ALERTS",'
        .. '"fingerprint":"%s%02x%08x%04x"}',
      name, cluster, instance, name, instance, text, instance, cluster, name,
      now, tag, id or 0, counter, i
    )
  end
  local body = string.format(
    '{"version":"4","groupKey":"{}/{severity=\\"error\\"}:{alertname=\\"%s\\", cluster=\\"%s\\"}",'
      .. '"truncatedAlerts":0,"status":"firing","receiver":"tocsin",'
      .. '"groupLabels":{"alertname":"%s","cluster":"%s"},'
      .. '"commonLabels":{"alertname":"%s","cluster":"%s","job":"node","severity":"error"},'
      .. '"commonAnnotations":{},"externalURL":"http://alertmanager.example.test:9093",'
      .. '"alerts":[%s]}',
    name, cluster, name, cluster, name, cluster, table.concat(parts, ",")
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
