// The window as it ships, looked at on the display itself. The main end-to-end run keeps
// WebKit's compositing on, because WebKitWebDriver's screenshots wait for a composited
// frame; the app otherwise draws without it on Linux. This run starts the app the way it
// ships and reads the pixels of its window from the virtual display's framebuffer (Xvfb
// `-fbdir`, an XWD file), so a page that is built but never drawn fails here, as it would
// on the operator's screen.
//
// Environment: KEYWARD_E2E_WEBDRIVER (tauri-driver without KEYWARD_WEBVIEW_COMPOSITING),
// KEYWARD_E2E_APP, KEYWARD_E2E_DISPLAY, KEYWARD_E2E_FRAMEBUFFER, KEYWARD_E2E_SHOTS.

import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { png } from './png.mjs'

const env = (name) => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set`)
  return v
}
const WD = env('KEYWARD_E2E_WEBDRIVER')
const APP = env('KEYWARD_E2E_APP')
const DISPLAY = env('KEYWARD_E2E_DISPLAY')
const FRAMEBUFFER = env('KEYWARD_E2E_FRAMEBUFFER')
const SHOTS = env('KEYWARD_E2E_SHOTS')
const TITLE = 'Keyward 证书助手'
// The page's colours (ui/src/styles.css): the selected navigation item, and the text.
const BLUE = [0x18, 0x5c, 0xa8]
const INK = [0x1f, 0x29, 0x33]

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

// Copies of the app still running (it stays in the tray when its window closes): a new
// launch would hand over to them and exit.
function endApp() {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readlinkSync(`/proc/${pid}/exe`) === APP) process.kill(Number(pid), 'SIGTERM')
    } catch {
      // Gone, or not ours to read.
    }
  }
}

// The framebuffer as width, height and an RGB reader (XWD, version 7, 24 or 32 bits per
// pixel in the file's byte order).
function framebuffer() {
  const b = readFileSync(FRAMEBUFFER)
  const be = b.readUInt32BE(4) === 7
  const u32 = (i) => (be ? b.readUInt32BE(i * 4) : b.readUInt32LE(i * 4))
  const [headerSize, version, , , width, height, , byteOrder, , , , bitsPerPixel, bytesPerLine] = Array.from(
    { length: 13 },
    (_, i) => u32(i),
  )
  if (version !== 7 || (bitsPerPixel !== 32 && bitsPerPixel !== 24)) {
    throw new Error(`framebuffer: XWD version ${version}, ${bitsPerPixel} bits per pixel`)
  }
  const [redMask, greenMask, blueMask] = [u32(14), u32(15), u32(16)]
  const colours = u32(19)
  const start = headerSize + colours * 12
  const shift = (m) => Math.clz32(1) - Math.clz32(m & -m)
  const bytes = bitsPerPixel / 8
  const rgb = (x, y) => {
    const at = start + y * bytesPerLine + x * bytes
    let v = 0
    for (let k = 0; k < bytes; k++) v += b[at + (byteOrder === 0 ? k : bytes - 1 - k)] * 2 ** (8 * k)
    return [(v & redMask) >>> shift(redMask), (v & greenMask) >>> shift(greenMask), (v & blueMask) >>> shift(blueMask)]
  }
  return { width, height, rgb }
}

// Where the window is on the display, from xwininfo (Debian package x11-utils).
function windowRect() {
  const out = execFileSync('xwininfo', ['-display', DISPLAY, '-name', TITLE], { encoding: 'utf8' })
  const field = (name) => Number(out.match(new RegExp(`${name}:\\s+(-?\\d+)`))?.[1])
  const r = { x: field('Absolute upper-left X'), y: field('Absolute upper-left Y'), w: field('Width'), h: field('Height') }
  if (Object.values(r).some((v) => !Number.isFinite(v))) throw new Error(`xwininfo said: ${out}`)
  return r
}

const near = (a, b, d = 12) => a.every((v, i) => Math.abs(v - b[i]) <= d)

// What the window shows: the selected item's blue in the navigation, text in the content,
// and not one colour over all of it (an undrawn window is all black or all white).
function look(fb, r) {
  let blue = 0
  let ink = 0
  const counts = new Map()
  for (let y = r.y; y < r.y + r.h; y += 2) {
    for (let x = r.x; x < r.x + r.w; x += 2) {
      const c = fb.rgb(x, y)
      counts.set(c.join(), (counts.get(c.join()) ?? 0) + 1)
      if (x - r.x < 230 && near(c, BLUE)) blue++
      if (x - r.x > 240 && near(c, INK, 40)) ink++
    }
  }
  const sampled = Math.ceil(r.w / 2) * Math.ceil(r.h / 2)
  const commonest = Math.max(...counts.values()) / sampled
  return { blue, ink, commonest }
}

async function main() {
  endApp()
  await sleep(500)
  const session = (
    await wd('POST', '/session', {
      capabilities: { alwaysMatch: { browserName: 'wry', 'tauri:options': { application: APP } } },
    })
  ).sessionId
  try {
    const js = (script) => wd('POST', `/session/${session}/execute/sync`, { script, args: [] })
    const started = Date.now()
    let keys = 0
    while (Date.now() - started < 20000) {
      keys = await js('return document.querySelectorAll("[data-testid=key-card]").length').catch(() => 0)
      if (keys > 0) break
      await sleep(100)
    }
    if (keys === 0) throw new Error('Home listed no key within 20 s')
    // The page is built; now it must reach the display.
    let seen = null
    let rect = null
    while (Date.now() - started < 30000) {
      rect = windowRect()
      seen = look(framebuffer(), rect)
      if (seen.blue > 1200 && seen.ink > 300 && seen.commonest < 0.95) break
      await sleep(250)
    }
    const fb = framebuffer()
    writeFileSync(join(SHOTS, 'home-as-shipped.png'), png(rect.w, rect.h, (x, y) => fb.rgb(rect.x + x, rect.y + y)))
    console.log(
      `  drawn without compositing: ${keys} key(s); ${seen.blue} blue and ${seen.ink} text pixels sampled, the commonest colour ${(seen.commonest * 100).toFixed(0)}% of the window`,
    )
    if (!(seen.blue > 1200 && seen.ink > 300 && seen.commonest < 0.95)) {
      throw new Error(`the window as shipped is not drawn on the display: ${JSON.stringify(seen)}`)
    }
  } finally {
    await wd('DELETE', `/session/${session}`).catch(() => {})
    endApp()
  }
}

main().then(
  () => console.log('✓ the window as it ships is drawn on the display'),
  (e) => {
    console.error(`✗ the window as it ships: ${e.message}`)
    process.exit(1)
  },
)
