// Desktop start and memory, Keyward's release build against a minimal Tauri 2 app built in
// the same run (benches/minimal-tauri), run by `cargo xtask bench` under Xvfb through
// tauri-driver and WebKitWebDriver, which launch each app the same way.
//
// Each run launches one app: the clock starts just before the WebDriver session is asked
// for (the driver starts the app); "mapped" is the first moment its window is viewable on
// the X display (xwininfo), "ready" the first moment the page shows what it is for: the
// minimal app's line of Chinese text, Keyward's Home with both fixture keys. The apps take
// turns, run by run. Two seconds after ready, memory is read: the proportional set size
// (Pss, /proc/<pid>/smaps_rollup) of the app and of each process it started (WebKit's web
// and network processes), with the app's threads, the shared objects it mapped, and the
// page's DOM size.
//
// Environment: KEYWARD_BENCH_WEBDRIVER (driver URL), KEYWARD_BENCH_APPS (JSON list of
// {name, binary, exe?, ready: "text" | "keys", title}), KEYWARD_BENCH_RUNS, KEYWARD_BENCH_DISPLAY,
// KEYWARD_BENCH_OUT (the JSON written); KEYWARD_BENCH_DUMP (optional, a folder for each
// process's smaps and thread names and the page's timeline, to look into the difference).

import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs'

const env = (name) => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set (run this through cargo xtask bench)`)
  return v
}
const WD = env('KEYWARD_BENCH_WEBDRIVER')
const APPS = JSON.parse(env('KEYWARD_BENCH_APPS'))
// The executable an app's process runs: its `binary`, unless that is a script which starts
// the `exe` with something set.
const exe = (app) => app.exe ?? app.binary
const RUNS = Number(env('KEYWARD_BENCH_RUNS'))
const DISPLAY = env('KEYWARD_BENCH_DISPLAY')
const OUT = env('KEYWARD_BENCH_OUT')
const SETTLE_MS = 2000
// When set, each run leaves in this folder what a look into the difference needs: every
// process's smaps and thread names, and the page's timeline (navigation and resources).
const DUMP = process.env.KEYWARD_BENCH_DUMP

async function wd(method, path, body) {
  const res = await fetch(`${WD}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60000),
  })
  const json = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json.value ?? json)}`)
  return json.value
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** The id of a viewable top-level window whose name holds `title`, or null. */
function viewable(title) {
  let tree
  try {
    tree = execFileSync('xwininfo', ['-root', '-tree', '-display', DISPLAY], { encoding: 'utf8' })
  } catch {
    return null
  }
  for (const line of tree.split('\n')) {
    if (!line.includes(title)) continue
    const id = line.trim().split(/\s+/)[0]
    try {
      const info = execFileSync('xwininfo', ['-id', id, '-display', DISPLAY], { encoding: 'utf8' })
      if (info.includes('Map State: IsViewable')) return id
    } catch {
      // The window went away meanwhile.
    }
  }
  return null
}

function processes() {
  const out = []
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      out.push({ pid: Number(pid), ppid, exe: readlinkSync(`/proc/${pid}/exe`) })
    } catch {
      // Ended meanwhile, or not ours to read.
    }
  }
  return out
}

function kb(file, field) {
  const m = readFileSync(file, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'))
  return m ? Number(m[1]) : 0
}

/** The app's process and everything under it, with their Pss. */
function memory(binary) {
  const all = processes()
  const app = all.find((p) => p.exe === binary)
  if (!app) throw new Error(`no process runs ${binary}`)
  const tree = [app]
  for (let i = 0; i < tree.length; i++) tree.push(...all.filter((p) => p.ppid === tree[i].pid))
  const parts = tree.map((p) => ({
    what: p === app ? 'app' : p.exe.split('/').pop(),
    pss_kb: kb(`/proc/${p.pid}/smaps_rollup`, 'Pss'),
    rss_kb: kb(`/proc/${p.pid}/smaps_rollup`, 'Rss'),
    threads: kb(`/proc/${p.pid}/status`, 'Threads'),
    objects: new Set(
      readFileSync(`/proc/${p.pid}/maps`, 'utf8')
        .split('\n')
        .map((l) => l.trim().split(/\s+/)[5])
        .filter((f) => f && f.includes('.so')),
    ).size,
  }))
  return { pss_kb: parts.reduce((n, p) => n + p.pss_kb, 0), parts }
}

let dumped = 0
async function dump(app, t0) {
  const all = processes()
  const root = all.find((p) => p.exe === exe(app))
  const tree = [root]
  for (let i = 0; i < tree.length; i++) tree.push(...all.filter((p) => p.ppid === tree[i].pid))
  const n = dumped++
  for (const p of tree) {
    const what = p === root ? 'app' : p.exe.split('/').pop()
    const base = `${DUMP}/${n}-${app.name}-${what}`
    writeFileSync(`${base}.smaps`, readFileSync(`/proc/${p.pid}/smaps`))
    const comms = readdirSync(`/proc/${p.pid}/task`).map((t) => {
      try {
        return readFileSync(`/proc/${p.pid}/task/${t}/comm`, 'utf8').trim()
      } catch {
        return '?'
      }
    })
    writeFileSync(`${base}.threads`, comms.sort().join('\n') + '\n')
  }
  const timeline = await js(
    'return { origin: performance.timeOrigin, nav: performance.getEntriesByType("navigation").map((e) => e.toJSON()), res: performance.getEntriesByType("resource").map((e) => ({ name: e.name, start: e.startTime, end: e.responseEnd })), marks: performance.getEntriesByType("mark").map((e) => ({ name: e.name, at: e.startTime })) }',
  ).catch((e) => ({ error: String(e) }))
  timeline.launch = performance.timeOrigin + t0
  writeFileSync(`${DUMP}/${n}-${app.name}-timeline.json`, JSON.stringify(timeline, null, 2))
}

let js = null
async function once(app) {
  const t0 = performance.now()
  const capabilities = { alwaysMatch: { browserName: 'wry', 'tauri:options': { application: app.binary } } }
  let session = null
  let mapped = null
  const asking = wd('POST', '/session', { capabilities }).then((v) => {
    session = v.sessionId
  })
  // The window is watched while the driver starts the app.
  while (mapped === null && performance.now() - t0 < 30000) {
    if (viewable(app.title)) mapped = performance.now() - t0
    else await sleep(5)
  }
  await asking
  js = (script) => wd('POST', `/session/${session}/execute/sync`, { script, args: [] })
  const probe =
    app.ready === 'keys'
      ? 'return document.querySelectorAll("[data-testid=key-card]").length === 2'
      : 'return (document.getElementById("line")?.textContent ?? "").length > 0'
  let ready = null
  while (ready === null && performance.now() - t0 < 30000) {
    if (await js(probe).catch(() => false)) ready = performance.now() - t0
    else await sleep(10)
  }
  if (mapped === null || ready === null) throw new Error(`${app.name} did not start within 30 s`)
  await sleep(SETTLE_MS)
  const page = await js("return { dom_nodes: document.getElementsByTagName('*').length }").catch(() => null)
  const mem = memory(exe(app))
  if (DUMP) await dump(app, t0)
  await wd('DELETE', `/session/${session}`).catch(() => {})
  await end(app)
  return { mapped_ms: Math.round(mapped), ready_ms: Math.round(ready), ...mem, page }
}

/** Ends what a launch of `app` left (Keyward stays in the tray when its window closes)
 * and waits until it and its window are gone. */
async function end(app) {
  for (const p of processes().filter((p) => p.exe === exe(app))) {
    try {
      process.kill(p.pid, 'SIGTERM')
    } catch {
      // Already gone.
    }
  }
  for (let i = 0; i < 200 && (processes().some((p) => p.exe === exe(app)) || viewable(app.title)); i++) {
    await sleep(50)
  }
}

// On this shared, busy machine a launch now and then never gets its WebDriver session (no
// answer within a minute; seen mid-run for the minimal app, after three good launches of
// each). Such a launch is ended and tried once more, and the run says so; a second failure
// stops the run.
let retried = 0
async function launch(app) {
  try {
    return await once(app)
  } catch (e) {
    console.log(`  ${app.name}: the launch failed (${e.message}); ending it and trying once more`)
    retried++
    await end(app)
    await sleep(SETTLE_MS)
    return await once(app)
  }
}

const results = Object.fromEntries(APPS.map((a) => [a.name, []]))
// One launch of each first, not counted: the disk cache warm for both alike.
for (const app of APPS) await launch(app)
for (let run = 0; run < RUNS; run++) {
  for (const app of run % 2 === 0 ? APPS : [...APPS].reverse()) {
    const r = await launch(app)
    results[app.name].push(r)
    console.log(`  ${app.name} run ${run + 1}: mapped ${r.mapped_ms} ms, ready ${r.ready_ms} ms, Pss ${Math.round(r.pss_kb / 1024)} MB`)
  }
}
if (retried > 0) console.log(`  launches tried again: ${retried}`)
writeFileSync(OUT, JSON.stringify(results, null, 2))
