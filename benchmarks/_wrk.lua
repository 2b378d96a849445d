-- wrk script for ingress.py: signed issues deliveries, each with a fresh X-GitHub-Delivery.
-- Arguments (after --): a file of "signature<TAB>body" lines, and a prefix for the delivery ids.
-- The signature covers the body only, so one pre-signed body serves many delivery ids.
-- done() prints one line "BENCH {json}" with counts and latency percentiles (microseconds).

local threads = {}
local counter = 0
local pick = 0
local sigs, bodies = {}, {}
accepted, other = 0, 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local tab = line:find("\t", 1, true)
    table.insert(sigs, line:sub(1, tab - 1))
    table.insert(bodies, line:sub(tab + 1))
  end
  f:close()
  prefix = args[2] .. "-" .. tostring(tid)
end

function request()
  counter = counter + 1
  pick = pick % #bodies + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "issues",
    ["X-GitHub-Delivery"] = prefix .. "-" .. counter,
    ["X-Hub-Signature-256"] = sigs[pick],
    ["User-Agent"] = "GitHub-Hookshot/bench",
  }
  return wrk.format("POST", "/webhook", headers, bodies[pick])
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local acc, oth = 0, 0
  for _, t in ipairs(threads) do
    acc = acc + t:get("accepted")
    oth = oth + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "accepted": %d, "other": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "errors": %d}\n',
    summary.requests, summary.duration, acc, oth, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect + e.read + e.write + e.timeout))
end
