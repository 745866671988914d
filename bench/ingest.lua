-- wrk script for bench/ingest.py: POSTs what analytics-python sends.
--
--   wrk ... -s bench/ingest.lua http://127.0.0.1:PORT/v1/track -- track 1a2b3 AUTH 1
--   wrk ... -s bench/ingest.lua http://127.0.0.1:PORT/v1/batch -- batch 1a2b3 AUTH 100
--
-- RUN_ID (5 hex digits) makes every messageId unique across runs (segue drops a
-- messageId it has already seen: re-sending one body would store nothing); AUTH is the
-- whole Authorization header value ("Basic base64(writeKey:)").
-- At the end one line "WRK_JSON {...}" carries the figures bench/ingest.py reads.

-- One analytics-python track call (analytics/client.py): the key order and value
-- shapes it produces, ~600 bytes on the wire with sentAt. The messageId goes between
-- the two halves.
local EVENT_HEAD = '{"integrations": {}, "anonymousId": null, "properties": {"order_id": "ord_50312", '
  .. '"revenue": 52.49, "shipping": 3.0, "tax": 4.2, '
  .. '"discount": 2.5, "coupon": "SPRING25", "currency": "USD", "products": [{"product_id": '
  .. '"60a3c9e1f1d2b34a5c6e7f80", "sku": "P-104", "name": "Wingspan", "price": 54.99, '
  .. '"quantity": 1}]}, "timestamp": "2025-05-14T09:31:07.412817+00:00", '
  .. '"context": {"ip": "203.0.113.215", "library": {"name": "analytics-python", '
  .. '"version": "2.3.4"}}, "userId": "user_8f14e45fceea167a", "type": "track", '
  .. '"event": "Order Completed", "messageId": "'
local EVENT_TAIL = '"'
local SENT_AT = '"sentAt": "2025-05-14T09:31:07.498321+00:00"'

local mode, run_id, per_request = "track", "run", 1
local n = 0
body_bytes = 0
requests_built = 0

local random = math.random

-- analytics-python sends uuid4 messageIds: random, so they land all over segue's
-- dedup index, as real traffic does. The last group carries the run (5 hex digits),
-- the thread (1) and a counter (6), which keeps every id of a run unique and lets
-- bench/ingest.py tell this run's events from the warm-up's.
local function message_id()
  n = n + 1
  return string.format("%04x%04x-%04x-4%03x-%x%03x-%s%x%06x",
    random(0, 0xffff), random(0, 0xffff), random(0, 0xffff), random(0, 0xfff),
    random(8, 11), random(0, 0xfff), run_id, (tid or 1) % 16, n % 0x1000000)
end

threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  mode = args[1] or "track"
  run_id = args[2] or "run"
  local auth = args[3]
  per_request = tonumber(args[4] or "1")
  math.randomseed(os.time() * 16 + (tid or 1))
  assert(#run_id == 5, "RUN_ID must be 5 hex digits")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["User-Agent"] = "analytics-python/2.3.4"
  wrk.headers["Accept-Encoding"] = "gzip, deflate"
  if auth and auth ~= "" then
    wrk.headers["Authorization"] = auth
  end
end

local function track_body()
  return EVENT_HEAD .. message_id() .. EVENT_TAIL .. ", " .. SENT_AT .. "}"
end

local function batch_body()
  local items = {}
  for i = 1, per_request do
    items[i] = EVENT_HEAD .. message_id() .. EVENT_TAIL .. "}"
  end
  return '{"batch": [' .. table.concat(items, ", ") .. "], " .. SENT_AT .. "}"
end

function request()
  local body
  if mode == "batch" then
    body = batch_body()
  else
    body = track_body()
  end
  requests_built = requests_built + 1
  body_bytes = #body
  return wrk.format(nil, nil, nil, body)
end

local function sum_threads(name)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get(name) or 0)
  end
  return total
end

function done(summary, latency, requests)
  local e = summary.errors
  local body = 0
  for _, thread in ipairs(threads) do
    body = math.max(body, thread:get("body_bytes") or 0)
  end
  io.write(string.format(
    'WRK_JSON {"duration_us": %d, "requests": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}, '
      .. '"requests_built": %d, "body_bytes": %d}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    sum_threads("requests_built"), body))
end
