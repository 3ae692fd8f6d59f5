// The read benchmark's load client: one autocannon run against one URL, driven by
// bench/read_bench.py (node bench/read_load.js CONFIG.json; it prints JSON lines).
//
// Contract:
// * CONFIG.json: {"modules": <node_modules folder holding autocannon>, "url": "http://host:port",
//   "paths": [..] (every request picks one at random) or "path", "connections": N,
//   "seconds": S, "warmupSeconds": W, "overallRate": R (optional: requests/s over all
//   connections), "timeoutSeconds": T}.
// * SIGTERM ends the recorded run early (autocannon stops within its 1 s sampling tick) and the
//   result covers the run up to there: bench/read_bench.py runs the load for as long as a drain
//   takes.
// * Keep-alive connections, no pipelining (pipelining: 1). A warm-up run of W seconds is made
//   first and not recorded; then `{"event":"measuring"}` is printed, and after the measured run
//   one `{"event":"result", ...}` line: responses (2xx), non2xx, errors, timeouts, seconds,
//   requestsPerS (2xx responses / measured seconds), and p50/p90/p99/p999/max/mean in ms.
// * Latency is each response's time from its request written to its last byte (autocannon's
//   own hrtime measure), kept at full resolution here: autocannon's histogram holds whole
//   milliseconds, too coarse for sub-millisecond answers. Percentiles are nearest-rank, as
//   bench/harness.py computes them. No coordinated-omission correction: the closed-loop runs
//   need none, and the rate-limited run's server keeps up with its rate.
'use strict'

const fs = require('fs')
const path = require('path')

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const autocannon = require(path.join(config.modules, 'autocannon'))

function say (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function options (seconds) {
  const paths = config.paths || [config.path]
  const n = paths.length
  const opts = {
    url: config.url,
    connections: config.connections,
    pipelining: 1,
    duration: seconds,
    timeout: config.timeoutSeconds || 10,
    headers: { accept: 'application/json' }
  }
  if (n > 1) {
    // one random position per request: autocannon rebuilds the request from setupRequest
    opts.requests = [{ setupRequest: (req) => { req.path = paths[(Math.random() * n) | 0]; return req } }]
  } else {
    opts.url = config.url + paths[0]
  }
  if (config.overallRate) opts.overallRate = config.overallRate
  return opts
}

function percentile (sorted, q) {
  if (sorted.length === 0) return null
  const rank = Math.max(1, Math.min(sorted.length, Math.round(q / 100 * sorted.length + 0.5)))
  return sorted[rank - 1]
}

let current = null
let stopping = false
process.on('SIGTERM', () => {
  stopping = true
  if (current) current.stop()
})

function runOnce (seconds, record) {
  return new Promise((resolve, reject) => {
    current = autocannon(options(seconds), (err, result) => err ? reject(err) : resolve(result))
    if (record) current.on('response', record)
    if (stopping && record) current.stop()
  })
}

async function main () {
  if (config.warmupSeconds > 0) await runOnce(config.warmupSeconds, null)
  let latencies = new Float64Array(1 << 16)
  let n = 0
  let non2xx = 0
  say({ event: 'measuring' })
  const started = process.hrtime.bigint()
  const result = await runOnce(config.seconds, (client, status, bytes, ms) => {
    if (status < 200 || status > 299) { non2xx++; return }
    if (n === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2)
      bigger.set(latencies)
      latencies = bigger
    }
    latencies[n++] = ms
  })
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const sorted = latencies.subarray(0, n).sort()
  let sum = 0
  for (let i = 0; i < n; i++) sum += sorted[i]
  const round = (x) => x === null ? null : Math.round(x * 1000) / 1000
  say({
    event: 'result',
    connections: config.connections,
    overallRate: config.overallRate || null,
    responses: n,
    non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds: Math.round(seconds * 1000) / 1000,
    requestsPerS: Math.round(n / seconds * 10) / 10,
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    p999: round(percentile(sorted, 99.9)),
    max: round(n ? sorted[n - 1] : null),
    mean: round(n ? sum / n : null)
  })
}

main().catch((err) => {
  say({ event: 'error', error: String(err && err.stack ? err.stack : err) })
  process.exit(1)
})
