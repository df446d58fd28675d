// Turns the JSON lines of bench/run.sh into a markdown report (stdout).
//
//   node bench/report.mjs results.jsonl [title] [settings]
//
// Each cell is the median over the rounds of the successful runs; "(×r)" is the ratio to
// y-websocket's (without y-websocket in the run: to wiredb baseline's, else to one wiredb
// instance's, which is how cluster runs compare, else to Hocuspocus'). A failed run shows
// as FAIL (its error is listed below the table). With wiredb-hocuspocus (our Caddy driven
// in the Hocuspocus protocol) in the run, two more columns give its ratios to Hocuspocus
// and to wiredb (y-websocket), medians over medians, per value of a pair.

import fs from 'node:fs'
import os from 'node:os'
import { execFileSync } from 'node:child_process'

const [file, title = '', settings = ''] = process.argv.slice(2)
if (!file) {
  console.error('usage: node bench/report.mjs results.jsonl [title] [settings]')
  process.exit(2)
}
const rows = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))

const SERVERS = [
  ['ywebsocket', 'y-websocket'],
  ['hocuspocus', 'Hocuspocus'],
  ['wiredb-baseline', 'wiredb baseline'],
  ['wiredb', 'wiredb'],
  ['wiredb-hocuspocus', 'wiredb, Hocuspocus protocol'],
  ['wiredb-fsync-never', 'wiredb fsync never'],
  ['barerelay', 'bare relay'],
  ['wiredb-cluster1', 'wiredb cluster, 1 instance + Redis'],
  ['wiredb-cluster', 'wiredb cluster, 3 instances + Redis'],
  ['wiredb-cluster-always', 'wiredb cluster, Redis appendfsync always']
].filter(([k]) => rows.some((r) => r.server === k))
const has = (k) => rows.some((r) => r.server === k)
const CLUSTER = SERVERS.some(([k]) => k.startsWith('wiredb-cluster'))
// An A/B run (wiredb-baseline against wiredb, no y-websocket) takes ratios to the baseline;
// a cluster run without y-websocket to one wiredb instance.
const BASE = has('ywebsocket') ? 'ywebsocket' : has('wiredb-baseline') ? 'wiredb-baseline' : has('wiredb') ? 'wiredb' : has('hocuspocus') ? 'hocuspocus' : 'ywebsocket'
const BASE_LABEL = { ywebsocket: 'y-websocket', 'wiredb-baseline': 'wiredb baseline', wiredb: CLUSTER ? 'one wiredb instance' : 'wiredb', hocuspocus: 'Hocuspocus' }[BASE]
// ratio columns of our Hocuspocus mode: [label, server, to server]
const RATIOS = has('wiredb-hocuspocus')
  ? [['hocuspocus', 'Hocuspocus'], ['wiredb', 'wiredb (y-websocket)']]
      .filter(([k]) => has(k))
      .map(([k, l]) => [`wiredb Hocuspocus ÷ ${l}`, 'wiredb-hocuspocus', k])
  : []
const isCluster = (server) => server.startsWith('wiredb-cluster')
const isMulti = (server) => isCluster(server) && server !== 'wiredb-cluster1'
// a first join on an instance that did not hold the room: a cluster's joins on each
// instance (fresh_join_median_ms), one instance's first join (medians over the rooms)
const fresh = (d) => d.fresh_join_median_ms ?? d.first_join_ms

// [bench, label, value(d), 'lo'|'hi' (which is better), digits, cluster-only]; bench may
// be a function of the server (the same measure comes from different runs)
const C = true
const METRICS = [
  ['server-log', 'a cluster\'s logs per round: Redis subscription lost (times)', (d) => d.subscription_lost, 'lo', 0, C],
  ['server-log', '  rooms closed for falling behind the shared log', (d) => d.rooms_closed, 'lo', 0, C],
  ['idle', 'idle 2,000 conns: RSS per connection (KiB)', (d) => d.rss_per_conn_kb, 'lo', 1],
  ['idle', 'idle: time to open and sync 2,000 (s)', (d) => d.connect_s, 'lo', 2],
  ['fanout-1x10', '1 room × 10 writers × 20/s: latency p50 (ms)', (d) => d.latency_ms?.p50, 'lo', 2],
  ['fanout-1x10', '  latency p99 (ms)', (d) => d.latency_ms?.p99, 'lo', 2],
  ['fanout-1x10', '  latency max (ms)', (d) => d.latency_ms?.max, 'lo', 1],
  ['fanout-1x10', '  deliveries/s', (d) => d.deliveries_per_s, 'hi', 0],
  ['fanout-1x10', '  server CPU per delivery (µs)', (d) => d.server_cpu_us_per_delivery, 'lo', 1],
  ['fanout-1x10', '  missing deliveries', (d) => d.missing, 'lo', 0],
  ['fanout-1x10', '  rest of the machine meanwhile (cores busy)', (d) => d.other_cpu_util, 'lo', 2],
  ['fanout-1x10', '  cross-instance deliveries: share', (d) => d.cross_fraction, 'hi', 2, C],
  ['fanout-1x10', '  cross-instance latency p50 / p99 (ms)', (d) => d.latency_cross_ms?.n ? [d.latency_cross_ms.p50, d.latency_cross_ms.p99] : null, 'lo', 2, C],
  ['fanout-1x10', '  same-instance latency p50 / p99 (ms)', (d) => d.latency_local_ms?.n ? [d.latency_local_ms.p50, d.latency_local_ms.p99] : null, 'lo', 2, C],
  ['fanout-1x10', '  Redis CPU per 1,000 updates (ms)', (d) => d.redis_cpu_ms_per_1k_updates, 'lo', 1, C],
  ['fanout-1x10', '  servers + Redis CPU per delivery (µs)', (d) => d.cluster_cpu_us_per_delivery ?? d.server_cpu_us_per_delivery, 'lo', 1, C],
  ['fanout-1x10', '  longest room stream, sampled each second (XLEN)', (d) => d.xlen_max, 'lo', 0, C],
  ['fanout-100x5', '100 rooms × 5 clients (2 writers × 10/s): latency p50 (ms)', (d) => d.latency_ms?.p50, 'lo', 2],
  ['fanout-100x5', '  latency p99 (ms)', (d) => d.latency_ms?.p99, 'lo', 2],
  ['fanout-100x5', '  latency max (ms)', (d) => d.latency_ms?.max, 'lo', 1],
  ['fanout-100x5', '  deliveries/s', (d) => d.deliveries_per_s, 'hi', 0],
  ['fanout-100x5', '  server CPU per delivery (µs)', (d) => d.server_cpu_us_per_delivery, 'lo', 1],
  ['fanout-100x5', '  server RSS peak (MiB)', (d) => d.rss_peak_mb, 'lo', 1],
  ['fanout-100x5', '  missing deliveries', (d) => d.missing, 'lo', 0],
  ['fanout-100x5', '  cross-instance latency p50 / p99 (ms)', (d) => d.latency_cross_ms?.n ? [d.latency_cross_ms.p50, d.latency_cross_ms.p99] : null, 'lo', 2, C],
  ['fanout-100x5', '  Redis CPU per 1,000 updates (ms)', (d) => d.redis_cpu_ms_per_1k_updates, 'lo', 1, C],
  ['fanout-100x5', '  servers + Redis CPU per delivery (µs)', (d) => d.cluster_cpu_us_per_delivery ?? d.server_cpu_us_per_delivery, 'lo', 1, C],
  ['fanout-100x5', '  Redis used_memory growth per 1,000 updates, peak (KiB)', (d) => d.redis_mem_peak_growth_kb_per_1k_updates, 'lo', 1, C],
  ['maxrate', 'max relay rate, 1 room, 4 writers + 1 receiver, 64 in flight per writer (updates/s)', (d) => d.updates_per_s, 'hi', 0],
  ['maxrate', '  deliveries/s', (d) => d.deliveries_per_s, 'hi', 0],
  ['maxrate', '  latency p50 / p99 at that rate (ms)', (d) => d.latency_ms && [d.latency_ms.p50, d.latency_ms.p99], 'lo', 1],
  ['maxrate', '  server CPU (cores busy)', (d) => d.server_cpu_util, 'hi', 2],
  ['maxrate', '  server CPU per update relayed to 4 (µs)', (d) => d.server_cpu_us_per_update, 'lo', 1],
  ['maxrate', '  load tool CPU (s, same 2 cores)', (d) => d.tool_cpu_s, 'lo', 2],
  ['maxrate', '  rest of the machine (other processes, kernel) meanwhile (cores busy)', (d) => d.other_cpu_util, 'lo', 2],
  ['maxrate', '  cross-instance latency p50 / p99 (ms)', (d) => d.latency_cross_ms?.n ? [d.latency_cross_ms.p50, d.latency_cross_ms.p99] : null, 'lo', 1, C],
  ['maxrate', '  Redis CPU (cores busy)', (d) => d.redis_cpu_util, 'hi', 2, C],
  ['maxrate', '  Redis CPU per 1,000 updates (ms)', (d) => d.redis_cpu_ms_per_1k_updates, 'lo', 1, C],
  ['maxrate', '  servers + Redis CPU per update (µs)', (d) => d.cluster_cpu_us_per_update ?? d.server_cpu_us_per_update, 'lo', 1, C],
  ['maxrate', '  Redis commands per update', (d) => d.redis_calls_per_update, 'lo', 2, C],
  ['maxrate', '  Redis used_memory peak (MiB)', (d) => d.redis_used_memory_mb_peak, 'lo', 1, C],
  ['maxrate', '  Redis used_memory growth per 1,000 updates, peak / end (KiB)', (d) => d.redis_mem_peak_growth_kb_per_1k_updates != null ? [d.redis_mem_peak_growth_kb_per_1k_updates, d.redis_mem_end_growth_kb_per_1k_updates] : null, 'lo', 1, C],
  ['maxrate', '  instances\' RSS at the end, least / most (MiB)', (d) => d.rss_end_mb_each ? [Math.min(...d.rss_end_mb_each), Math.max(...d.rss_end_mb_each)] : null, 'lo', 1, C],
  ['maxrate', '  instances\' CPU, least / most (s)', (d) => d.server_cpu_s_each ? [Math.min(...d.server_cpu_s_each), Math.max(...d.server_cpu_s_each)] : null, 'lo', 2, C],
  ['maxrate', '  longest room stream, sampled each second / at the end (XLEN)', (d) => d.xlen_max != null ? [d.xlen_max, d.xlen_end_max] : null, 'lo', 0, C],
  ['maxrate-w1024', 'max relay rate, 1,024 in flight per writer (updates/s)', (d) => d.updates_per_s, 'hi', 0],
  ['maxrate-w1024', '  latency p50 / p99 at that rate (ms)', (d) => d.latency_ms && [d.latency_ms.p50, d.latency_ms.p99], 'lo', 1],
  ['maxrate-w1024', '  server CPU (cores busy)', (d) => d.server_cpu_util, 'hi', 2],
  ['maxrate-w1024', '  server CPU per update relayed to 4 (µs)', (d) => d.server_cpu_us_per_update, 'lo', 1],
  ['maxrate-w1024', '  missing deliveries', (d) => d.missing, 'lo', 0],
  ['maxrate-w1024', '  Redis CPU (cores busy)', (d) => d.redis_cpu_util, 'hi', 2, C],
  ['maxrate-w1024', '  Redis CPU per 1,000 updates (ms)', (d) => d.redis_cpu_ms_per_1k_updates, 'lo', 1, C],
  ['maxrate-w1024', '  servers + Redis CPU per update (µs)', (d) => d.cluster_cpu_us_per_update ?? d.server_cpu_us_per_update, 'lo', 1, C],
  ['maxrate-w1024', '  Redis used_memory growth per 1,000 updates, peak / end (KiB)', (d) => d.redis_mem_peak_growth_kb_per_1k_updates != null ? [d.redis_mem_peak_growth_kb_per_1k_updates, d.redis_mem_end_growth_kb_per_1k_updates] : null, 'lo', 1, C],
  ['maxrate-w1024', '  longest room stream, sampled each second / at the end (XLEN)', (d) => d.xlen_max != null ? [d.xlen_max, d.xlen_end_max] : null, 'lo', 0, C],
  ['coldsync-doc20k', 'doc20k (20,000 updates) in memory: join to complete sync, median (ms)', (d) => d.median_join_ms, 'lo', 1],
  ['coldsync-doc20k', '  loading the 20,000 updates (s)', (d) => d.load_s, 'lo', 2],
  ['coldsync-doc20k', '  step2 size (KiB)', (d) => d.step2_bytes / 1024, 'lo', 0],
  ['coldsync-doc20k', '  server RSS after (MiB)', (d) => d.rss_end_mb, 'lo', 1],
  ['unloaded-doc20k', '  from disk, after an idle unload: first join (ms)', (d) => d.first_join_ms, 'lo', 1],
  ['disk-doc20k', '  from disk, after a restart: first join (ms)', (d) => d.first_join_ms, 'lo', 1],
  ['coldsync-fragmented', 'fragmented (200 writers, 20,000 updates) in memory: join, median (ms)', (d) => d.median_join_ms, 'lo', 1],
  ['coldsync-fragmented', '  loading the 20,000 updates (s)', (d) => d.load_s, 'lo', 2],
  ['coldsync-fragmented', '  step2 size (KiB)', (d) => d.step2_bytes / 1024, 'lo', 0],
  ['unloaded-fragmented', '  from disk, after an idle unload: first join (ms)', (d) => d.first_join_ms, 'lo', 1],
  ['disk-fragmented', '  from disk, after a restart: first join (ms)', (d) => d.first_join_ms, 'lo', 1],
  [(s) => isMulti(s) ? 'coldsync-10k' : 'unloaded-10k', '10,000-update room, first join on an instance that does not hold it, median (ms): one instance from its file after an idle unload; a cluster from checkpoint + log on an instance that never had it, the room live on another', fresh, 'lo', 1],
  ['coldsync-10k', '  loading the 10,000 updates through one instance (s)', (d) => d.load_s, 'lo', 2],
  ['coldsync-10k', '  in memory (a cluster: joins on an instance that has it), median (ms)', (d) => d.warm_join_median_ms ?? d.median_join_ms, 'lo', 1],
  ['coldsync-10k', '  longest stream while loading (XLEN)', (d) => d.load_xlen_max, 'lo', 0, C],
  ['unloaded-10k', '  every instance unloaded it: first join on each, median (ms)', fresh, 'lo', 1],
  ['disk-10k', '  after a restart (a cluster: of every instance): first join on each, median (ms)', fresh, 'lo', 1]
].filter((m) => !m[5] || CLUSTER)
const benchOf = (bench, server) => typeof bench === 'function' ? bench(server) : bench

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmt = (x, digits) => {
  if (x == null || Number.isNaN(x)) return '–'
  if (Math.abs(x) >= 10000) return Math.round(x).toLocaleString('en-US')
  return x.toFixed(digits)
}

/** values of one metric for one server: per round, from successful runs */
function values (bench, server, get) {
  const out = []
  bench = benchOf(bench, server)
  for (const r of rows) {
    if (r.bench !== bench || r.server !== server) continue
    if (!r.ok) { out.push({ fail: true, error: r.error, round: r.round }); continue }
    const v = get(r)
    if (v != null) out.push({ v, round: r.round })
  }
  return out
}

function cell (bench, server, get, digits) {
  const vs = values(bench, server, get)
  if (vs.length === 0) return { text: 'n/a' }
  const ok = vs.filter((x) => !x.fail)
  const fails = vs.length - ok.length
  if (ok.length === 0) return { text: `FAIL ×${fails}` }
  let med, text
  if (Array.isArray(ok[0].v)) {
    med = ok[0].v.map((_, i) => median(ok.map((x) => x.v[i])))
    text = med.map((m) => fmt(m, digits)).join(' / ')
  } else {
    med = median(ok.map((x) => x.v))
    text = fmt(med, digits)
  }
  if (fails) text += ` (FAIL ×${fails})`
  return { text, med, rounds: ok.map((x) => Array.isArray(x.v) ? x.v.map((m) => fmt(m, digits)).join('/') : fmt(x.v, digits)) }
}

const out = []
const sh = (cmd, args) => { try { return execFileSync(cmd, args, { encoding: 'utf8' }).trim() } catch { return '?' } }
out.push(`# wiredb side by side${title ? ` — ${title}` : ''}`)
out.push('')
out.push(`${settings ? settings + '; ' : ''}${os.cpus().length} cores (${os.cpus()[0]?.model || '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
  `node ${process.version}, ${sh('go', ['version']).replace('go version ', '')}. Server and load tool share the machine. ` +
  `Cells: median over rounds (ratio to ${BASE_LABEL}). wiredb = \`fsync interval 1s\` (default); ` +
  (CLUSTER ? 'a cluster\'s clients of one room are spread over its instances round-robin; its server CPU is the sum over the instances, Redis apart; ' : '') +
  'the bare relay forwards bytes and keeps nothing (no cold sync). ' +
  'y-websocket and Hocuspocus also send every update back to its sender (counted as echoes, not deliveries).')
/** "×a" (or "×a / ×b" for a pair) of server's median to den's; '–' without both */
function ratio (bench, server, den, get, digits) {
  const a = cell(bench, server, get, digits).med
  const b = cell(bench, den, get, digits).med
  if (a == null || b == null) return '–'
  const one = (x, y) => (x == null || y == null || !(y > 0) || x < 0) ? '–' : `×${fmt(x / y, x / y < 10 ? 2 : 1)}`
  return Array.isArray(a) ? a.map((x, i) => one(x, b[i])).join(' / ') : one(a, b)
}
if (RATIOS.length) {
  out.push('')
  out.push('wiredb, Hocuspocus protocol: our Caddy with wiredb\'s Caddyfile, the load tool speaking Hocuspocus ' +
    '(every client dials `/rooms`, as a provider does, and names its room as the document). Unlike Hocuspocus it does not send ' +
    'an update back to its sender (the tool counts echoes apart: they are not deliveries, but Hocuspocus spends ' +
    'CPU on them and so does the tool). Ratio columns: medians over medians, < 1 is less (lower latency, CPU, ' +
    'memory; for ↑ rows, a lower rate).')
}
out.push('')
out.push(`| metric | ${SERVERS.map(([, l]) => l).join(' | ')}${RATIOS.map(([l]) => ` | ${l}`).join('')} |`)
out.push(`|---|${SERVERS.map(() => '---:').join('|')}${RATIOS.map(() => '|---:').join('')}|`)
for (const [bench, label, get, better, digits] of METRICS) {
  const base = cell(bench, BASE, get, digits)
  const cells = SERVERS.map(([k]) => {
    const c = cell(bench, k, get, digits)
    if (k !== BASE && c.med != null && base.med != null && !Array.isArray(c.med)) {
      if (base.med > 0 && c.med >= 0) c.text += ` (×${fmt(c.med / base.med, c.med / base.med < 10 ? 2 : 1)})`
    }
    return c.text
  })
  for (const [, num, den] of RATIOS) cells.push(ratio(bench, num, den, get, digits))
  const mark = { lo: ' ↓', hi: ' ↑' }[better] || ''
  out.push(`| ${label.replace(/^ {2}/, '&nbsp;&nbsp;')}${mark} | ${cells.join(' | ')} |`)
}
out.push('')
out.push('↓ lower is better, ↑ higher is better.')
out.push('')
out.push('## Every round')
out.push('')
out.push(`| metric | ${SERVERS.map(([, l]) => l).join(' | ')} |`)
out.push(`|---|${SERVERS.map(() => '---:').join('|')}|`)
for (const [bench, label, get, , digits] of METRICS) {
  const cells = SERVERS.map(([k]) => {
    const c = cell(bench, k, get, digits)
    return c.rounds ? c.rounds.join(', ') : c.text
  })
  out.push(`| ${label.replace(/^ {2}/, '&nbsp;&nbsp;')} | ${cells.join(' | ')} |`)
}
const failed = rows.filter((r) => !r.ok)
if (failed.length) {
  out.push('')
  out.push('## Failures')
  out.push('')
  for (const r of failed) out.push(`- round ${r.round}, ${r.server}, ${r.bench}: ${String(r.error).replace(/\n/g, ' ')}`)
}
console.log(out.join('\n'))
