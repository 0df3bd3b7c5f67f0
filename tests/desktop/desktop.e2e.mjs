// End-to-end run of the built desktop app over simulated USB keys, through tauri-driver
// (WebDriver) and WebKitWebDriver. `cargo xtask e2e` starts Xvfb, the driver and the keys,
// then runs this file with plain Node: the WebDriver protocol is a few HTTP calls, so no
// browser-automation library is needed.
//
// What it proves: the app starts and lists every key, and sends the expiry reminder of the
// key inside 30 days as a desktop notification (read back from dunst, the notification
// server on the run's private session bus); a key pulled out vanishes and comes
// back without a click; the certificate details show; 修改密码 refuses a weak PIN before the
// key sees it, reports tries left after a wrong PIN, changes a PIN; wrong PINs run a key
// down to its final try (explicit confirmation) and the lock sends the operator to 忘记密码.
// 设置 shows the pinned root's SHA-256 fingerprint, the one openssl (and this file, from the
// PEM) computes; a bundle is refused; a root chosen in the window is pinned only after its
// fingerprint was confirmed there, as the app's own copy, which a later change of the
// original does not touch; a plain-http CA address is refused.
// Then, against the reference CA (keyward-ca, started here with its clock 300 days back, as
// the demo does, with its sandbox SMS outbox and payments): a blank key issued by the CA's
// station is activated in the app — the code asked for from the app first, the SMS with the
// 编号 the page shows typed in (Home says it waits for activation: the CA's word, the key
// raises no flag), and 绑定 on the portal offered next;
// 300 days later (the CA restarted on today's clock) it is renewed — apply, the order
// confirmed before paying in the sandbox, Home and the navigation show the certificate
// waiting to be installed, 安装证书, the key pulled out in the middle of writing the
// certificate (a fault armed in the simulator), plugged back in, and the install resumed
// with its progress photographed while the simulator holds the write — then the seal form
// is downloaded and a seal applied for with a PNG scan, approved by the CA's reviewer, shown
// waiting on Home and installed;
// 签章 stamps a PDF with that seal (placed by a click on the page, an existing output
// refused), pdfsig finds the stamp valid and trusted and the original is unchanged;
// 办理进度查询 lists every business once the PIN is given; last the key is run down to a lock
// with wrong PINs, a colleague's unlock goes to review and the reviewer rejects it, an
// unlock someone else applied for (from another computer, the CLI) is
// named and not taken over, and 忘记密码 brings the key back (the handler of record's own
// application goes through at once, SMS code, new PIN).
// The browser bridge as the app hosts it (tests/desktop/bridge.e2e.mjs): a WebSocket client
// speaks as pages do while the window is answered as the operator does.
// Each screen is photographed. Last, two figures for docs/benchmarks.md, written to
// target/e2e/desktop-measured.json: insert → key on Home (20 inserts; timed from just before
// the simulator's insert command to the page's own note of the card appearing, so the
// command's run time is included), and app start to two keys on Home with the app's RSS.

import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { bridgeSteps } from './bridge.e2e.mjs'
import { png } from './png.mjs'

const env = (name) => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set (run this through cargo xtask e2e)`)
  return v
}
const APP = env('KEYWARD_E2E_APP')
const WD = env('KEYWARD_E2E_WEBDRIVER')
const SIM = env('KEYWARD_E2E_SIM')
const SIM_STATE = env('KEYWARD_E2E_SIM_STATE')
const SHOTS = env('KEYWARD_E2E_SHOTS')
const DOCS = process.env.KEYWARD_E2E_DOCS
const manifest = JSON.parse(readFileSync(env('KEYWARD_E2E_FIXTURES'), 'utf8'))
const serial = (state) => manifest.tokens.find((t) => t.state === state).serial
const USER_PIN = 'Fixture#2026'
const SO_PIN = 'SoFixture#2026'
const CA = env('KEYWARD_E2E_CA')
const CA_PORT = Number(env('KEYWARD_E2E_CA_PORT'))
const CA_URL = env('KEYWARD_CA_URL')
const CA_DIR = env('KEYWARD_CA_DATA_DIR')
const CA_ROOT = join(CA_DIR, 'ca', 'root.crt')
// The app's own folder (settings, the pinned root's copy), as cargo xtask e2e sets it.
const APP_DIR = join(SHOTS, '..', 'desktop')
// The folder shaped like /sys/bus/usb/devices the app's 环境检测 reads (KEYWARD_SYSFS_USB).
const SYSFS_USB = env('KEYWARD_E2E_SYSFS_USB')
// A USB device plugged into that folder, as keyward_flows::doctor::plant_device lays it out.
function plantUsb(name, id, manufacturer, product) {
  const dir = join(SYSFS_USB, name)
  const [v, p] = id.split(':')
  mkdirSync(join(dir, `${name}:1.0`), { recursive: true })
  writeFileSync(join(dir, 'idVendor'), `${v}\n`)
  writeFileSync(join(dir, 'idProduct'), `${p}\n`)
  writeFileSync(join(dir, 'manufacturer'), `${manufacturer}\n`)
  writeFileSync(join(dir, 'product'), `${product}\n`)
  writeFileSync(join(dir, `${name}:1.0`, 'bInterfaceClass'), '03\n')
}
// The app's download folder, as the run's XDG user-dirs file names it.
const DOWNLOADS = env('KEYWARD_E2E_DOWNLOADS')
const CLI = join(dirname(SIM), 'keyward')
const NEW_PIN = 'Keyward#2026ok'
const UNLOCKED_PIN = 'Unlocked#2027ok'
const HANDLER = { name: '李经办', id: '44010119900307123X', phone: '13800138001' }
const ORG = '广州市端到端科技有限公司'

const ELEMENT = 'element-6066-11e4-a52f-4a5d1a8e8f27'
let session = null

async function wd(method, path, body) {
  const res = await fetch(`${WD}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30000),
  })
  const json = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json.value ?? json)}`)
  return json.value
}
const s = (path) => `/session/${session}${path}`

async function waitFor(what, fn, timeout = 10000) {
  const start = Date.now()
  let last
  while (Date.now() - start < timeout) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`)
}

const js = (script, ...args) => wd('POST', s('/execute/sync'), { script, args })
const find = async (css) => {
  const v = await wd('POST', s('/element'), { using: 'css selector', value: css })
  return v[ELEMENT] ?? Object.values(v)[0]
}
const click = async (css) => wd('POST', s(`/element/${await find(css)}/click`), {})
const text = async (css) => wd('GET', s(`/element/${await find(css)}/text`))
const exists = (css) => js('return document.querySelector(arguments[0]) !== null', css)
const count = (css) => js('return document.querySelectorAll(arguments[0]).length', css)
async function type(css, value) {
  const el = await find(css)
  await wd('POST', s(`/element/${el}/clear`), {})
  await wd('POST', s(`/element/${el}/value`), { text: value })
}
const go = (hash) => js('location.hash = arguments[0]', hash)
const sim = (...args) => execFileSync(SIM, ['--state-dir', SIM_STATE, ...args], { stdio: 'pipe' })

// The reference CA, started and restarted by this run (its clock moved for the renewal).
let caProcess = null
async function startCa(clockOffsetDays) {
  caProcess = spawn(
    CA,
    [
      'serve', '--listen', `127.0.0.1:${CA_PORT}`, '--data-dir', CA_DIR, `--clock-offset-days=${clockOffsetDays}`,
      // The SMS outbox stands in for the handler's phone, the sandbox provider for payment.
      '--sandbox-sms', '--sandbox-payments',
    ],
    { stdio: 'ignore' },
  )
  await waitFor(
    'keyward-ca to listen',
    () =>
      new Promise((resolve) => {
        const c = connect(CA_PORT, '127.0.0.1', () => (c.end(), resolve(true)))
        c.on('error', () => resolve(false))
      }),
    30000,
  )
}
async function stopCa() {
  if (!caProcess || caProcess.exitCode !== null) return
  const exited = new Promise((r) => caProcess.once('exit', r))
  caProcess.kill('SIGTERM')
  await exited
  caProcess = null
}
// Standard input from a file: the CA's tools read secrets from a descriptor they open by
// path, which a socket (Node's pipes) cannot be.
function ca(args, input = '') {
  const file = join(SHOTS, '..', 'ca-stdin')
  writeFileSync(file, input, { mode: 0o600 })
  const fd = openSync(file, 'r')
  try {
    return execFileSync(CA, args, { stdio: [fd, 'pipe', 'pipe'] }).toString()
  } finally {
    closeSync(fd)
    writeFileSync(file, '')
  }
}
// The code of the newest SMS about `key` that carries a code — with `编号 reference` when
// the page named one, as the operator reads the phone.
function smsCode(key, reference) {
  const out = JSON.parse(ca(['sms', '--json', '--url', CA_URL]))
  const msg = [...out.messages]
    .reverse()
    .find((m) => m.key_serial === key && m.text.includes('验证码') && (!reference || m.text.includes(`编号 ${reference}`)))
  if (!msg) throw new Error(`no SMS for ${key}${reference ? ` numbered ${reference}` : ''}: ${JSON.stringify(out.messages.slice(-3))}`)
  const code = msg.text.split('验证码')[1]?.match(/\d+/)?.[0]
  if (!code) throw new Error(`no code in: ${msg.text}`)
  return code
}

// A PEM certificate's SHA-256 fingerprint as openssl prints it (AB:CD:…), computed here.
function fingerprint(pem) {
  const body = pem.split('-----BEGIN CERTIFICATE-----')[1].split('-----END CERTIFICATE-----')[0].replace(/\s+/g, '')
  const hex = createHash('sha256').update(Buffer.from(body, 'base64')).digest('hex').toUpperCase()
  return hex.match(/../g).join(':')
}
// And as openssl itself prints it, when it is installed.
function opensslFingerprint(file) {
  try {
    const out = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', file], { stdio: 'pipe' })
    return out.toString().trim().split('=')[1]
  } catch {
    return null
  }
}

// A stamped scan: a red ring on white, 120 × 120, as a PNG made here.
function scanPng() {
  const n = 120
  return png(n, n, (x, y) => {
    const d = Math.hypot(x - n / 2, y - n / 2)
    return (d > 44 && d < 54) || d < 12 ? [200, 20, 20] : [255, 255, 255]
  })
}

// Chooses a file in an <input type=file> as the operator would, from bytes made here.
async function chooseFile(css, name, type, bytes) {
  await js(
    `const input = document.querySelector(arguments[0])
     const bin = atob(arguments[3])
     const bytes = new Uint8Array(bin.length)
     for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i)
     const dt = new DataTransfer()
     dt.items.add(new File([bytes], arguments[1], { type: arguments[2] }))
     input.files = dt.files
     input.dispatchEvent(new Event('change', { bubbles: true }))`,
    css,
    name,
    type,
    bytes.toString('base64'),
  )
}

// A two-page document (A4 portrait, then landscape), written by hand and rewritten by cairo
// when poppler's pdftocairo is there: what the stamp goes on is another program's PDF.
function tenderPdf(dir) {
  const pages = [[595, 842], [842, 595]]
  const objects = [
    '<</Type/Catalog/Pages 2 0 R>>',
    `<</Type/Pages/Count ${pages.length}/Kids[${pages.map((_, i) => `${4 + 2 * i} 0 R`).join(' ')}]>>`,
    '<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>',
  ]
  pages.forEach(([w, h], i) => {
    const content = `BT /F1 20 Tf 72 ${h - 80} Td (Tender document, page ${i + 1}) Tj ET 0.6 g 72 ${h - 300} ${w - 144} 180 re f`
    objects.push(`<</Type/Page/Parent 2 0 R/MediaBox[0 0 ${w} ${h}]/Resources<</Font<</F1 3 0 R>>>>/Contents ${5 + 2 * i} 0 R>>`)
    objects.push(`<</Length ${content.length}>>stream\n${content}\nendstream`)
  })
  let pdf = '%PDF-1.4\n'
  const offsets = []
  objects.forEach((o, n) => {
    offsets.push(pdf.length)
    pdf += `${n + 1} 0 obj\n${o}\nendobj\n`
  })
  const xref = pdf.length
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`
  for (const o of offsets) pdf += `${String(o).padStart(10, '0')} 00000 n \n`
  pdf += `trailer\n<</Size ${objects.length + 1}/Root 1 0 R>>\nstartxref\n${xref}\n%%EOF\n`
  // A fresh folder: nothing a previous run stamped is there.
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const hand = join(dir, 'hand.pdf')
  writeFileSync(hand, pdf, 'latin1')
  const out = join(dir, '投标书.pdf')
  execFileSync('pdftocairo', ['-pdf', hand, out], { stdio: 'pipe' })
  return out
}

// pdfsig's report on `pdf`, with an NSS store that trusts only `rootPem`.
function pdfsig(pdf, rootPem, dir) {
  const db = join(dir, 'nssdb')
  mkdirSync(db, { recursive: true })
  execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password'], { stdio: 'pipe' })
  execFileSync('certutil', ['-A', '-d', `sql:${db}`, '-n', 'Keyward CA root', '-t', 'CT,C,C', '-i', rootPem], { stdio: 'pipe' })
  try {
    return execFileSync('pdfsig', ['-nssdir', `sql:${db}`, pdf], { stdio: 'pipe' }).toString()
  } catch (e) {
    return `${e.stdout ?? ''}${e.stderr ?? ''}`
  }
}

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex')

// A click at `xMm`, `yMm` (millimetres from the left and top edge) of page `page` of the
// 签章 page, where the operator's pointer would land.
async function clickPage(page, xMm, yMm) {
  const outline = `[data-testid=stamp-page-outline][data-page="${page}"]`
  await js(
    `const el = document.querySelector(arguments[0])
     const box = el.getBoundingClientRect()
     const k = el.clientHeight / Number(el.dataset.heightMm)
     const x = box.left + el.clientLeft + arguments[1] * k
     const y = box.top + el.clientTop + arguments[2] * k
     const at = { bubbles: true, clientX: x, clientY: y }
     el.dispatchEvent(new MouseEvent('click', at))`,
    outline,
    xMm,
    yMm,
  )
}

// The desktop notifications shown so far, as dunst keeps them: closing them moves them
// into its history, which dunstctl prints as JSON.
function notifications() {
  execFileSync('dunstctl', ['close-all'], { stdio: 'pipe' })
  const history = JSON.parse(execFileSync('dunstctl', ['history'], { stdio: 'pipe' }).toString())
  return (history.data?.[0] ?? []).map((n) => ({ summary: n.summary?.data ?? '', body: n.body?.data ?? '' }))
}

const shots = []
async function shot(name, forDocs = true) {
  await new Promise((r) => setTimeout(r, 300))
  const png = Buffer.from(await wd('GET', s('/screenshot')), 'base64')
  const file = join(SHOTS, `${name}.png`)
  writeFileSync(file, png)
  shots.push(file)
  if (DOCS && forDocs) {
    mkdirSync(DOCS, { recursive: true })
    copyFileSync(file, join(DOCS, `${name}.png`))
  }
}

const steps = []
// KEYWARD_E2E_ONLY (a regular expression) runs only the steps it matches, and the first:
// for working on a few steps; the suite runs them all.
const ONLY = process.env.KEYWARD_E2E_ONLY ? new RegExp(process.env.KEYWARD_E2E_ONLY) : null
async function step(name, fn) {
  if (ONLY && steps.length > 0 && !ONLY.test(name)) {
    console.log(`- ${name} (skipped)`)
    return
  }
  const start = Date.now()
  try {
    await fn()
  } catch (e) {
    // Keep what the window showed when it went wrong.
    await shot(`failed-${steps.length + 1}`, false).catch(() => {})
    const body = await js('return document.body.innerText').catch(() => '(page unreadable)')
    throw new Error(`${name}: ${e.message}\n--- the window showed ---\n${body}`)
  }
  const ms = Date.now() - start
  steps.push([name, ms])
  console.log(`✓ ${name} (${ms} ms)`)
}

// 设置's 高级 section (the CA address and its root), folded by default, opened as a clerk would.
async function openAdvanced() {
  await waitFor('高级', () => exists('[data-testid=advanced]'))
  if (!(await js('return document.querySelector("[data-testid=advanced]").open'))) await click('[data-testid=advanced] summary')
  await waitFor('高级 open', () => js('return document.querySelector("[data-testid=advanced]").open'))
}

async function changePin(oldPin, newPin, again = newPin) {
  await type('[data-testid=old-pin]', oldPin)
  await type('[data-testid=new-pin]', newPin)
  await type('[data-testid=new-pin-again]', again)
}

// Wrong PINs in 修改密码 until the key locks: tries left after each, the final try held
// back until confirmed, then the lock sends the operator to 忘记密码.
async function runDown(key, shotNames = {}) {
  await go(`#/cert/${key}`)
  await waitFor('its certificate', () => exists('[data-testid=change-pin]'))
  await click('[data-testid=change-pin]')
  await waitFor('the dialog', () => exists('[data-testid=pin-state]'))
  // Tries already spent on this key (none for a fresh one).
  const left = Number((await text('[data-testid=pin-state]')).match(/再错 (\d+) 次/)?.[1] ?? 10)
  for (let i = 1; i < left; i++) {
    await changePin(`Wrong#${1000 + i}`, 'Better#2027pin')
    await click('[data-testid=pin-submit]')
    await waitFor(`wrong PIN ${i} answered`, async () =>
      (await exists('[data-testid=error][data-code=pin_incorrect]')) &&
      (await text('[data-testid=pin-state]')).includes(i === left - 1 ? '最后一次' : `再错 ${left - i} 次将锁定`),
    )
    if (i === 1 && shotNames.countLow) await shot(shotNames.countLow, false)
  }
  await waitFor('the final-try warning', () => exists('[data-testid=pin-final]'))
  await changePin('Wrong#1010', 'Better#2027pin')
  const blocked = await js('return document.querySelector("[data-testid=pin-submit]").disabled')
  if (!blocked) throw new Error('the final try was not held back for confirmation')
  if (shotNames.finalTry) await shot(shotNames.finalTry)
  await click('[data-testid=confirm-final]')
  await click('[data-testid=pin-submit]')
  await waitFor('the unlock wizard', async () => (await js('return location.hash')).startsWith('#/unlock/'))
  await waitFor('the locked state', async () => (await text('[data-testid=unlock-pin]')).includes('已锁定'))
}

const measured = {}

// The resident memory of the app's process (KiB), found by its executable.
function appRssKb() {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readlinkSync(`/proc/${pid}/exe`) !== APP) continue
      const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)
      if (m) return Number(m[1])
    } catch {
      // A process that ended meanwhile, or one not ours to read.
    }
  }
  return null
}

async function main() {
  // The CA's issuing station provisions the blank key before the app starts, 300 days ago
  // by the CA's clock: the key waits for activation, its SMS code in the CA's outbox.
  const blank = serial('blank')
  const caStart = Date.now()
  await startCa(-300)
  ca(
    [
      'issue', '--token', blank, '--org-name', ORG, '--uscc', '91440101MA5DM00032',
      '--address', '广州市天河区测试路 1 号', '--handler-name', HANDLER.name,
      '--id-number', HANDLER.id, '--phone', HANDLER.phone,
    ],
    `${SO_PIN}\n`,
  )
  console.log(`  keyward-ca started and issued ${blank} in ${Date.now() - caStart} ms`)
  const launched = Date.now()
  session = (
    await wd('POST', '/session', {
      capabilities: { alwaysMatch: { browserName: 'wry', 'tauri:options': { application: APP } } },
    })
  ).sessionId
  const everyKey = manifest.tokens.length
  try {
    await step('the app starts and lists every key', async () => {
      await waitFor('all keys on the home page', async () => (await count('[data-testid=key-card]')) === everyKey, 20000)
      console.log(`  ${everyKey} keys listed ${Date.now() - launched} ms after the session was asked for`)
      const nearExpiry = await text(`[data-serial="${serial('near-expiry')}"] [data-testid=key-next]`)
      if (!nearExpiry.includes('续期')) throw new Error(`near-expiry key says: ${nearExpiry}`)
      await shot('home')
      // The smallest window the app allows: Home still reads.
      const size = await wd('GET', s('/window/rect'))
      await wd('POST', s('/window/rect'), { width: 880, height: 600 })
      await new Promise((r) => setTimeout(r, 500))
      await shot('small-window')
      await wd('POST', s('/window/rect'), { width: size.width, height: size.height })
      // The reminder for the key inside 30 days of expiry, as a desktop notification.
      const org = manifest.tokens.find((t) => t.state === 'near-expiry').organization
      const seen = []
      const reminder = await waitFor('the expiry reminder notification', () => {
        seen.push(...notifications())
        return seen.find((n) => n.summary === '证书即将到期' && n.body.includes(org))
      })
      console.log(`  notification: ${reminder.summary} · ${reminder.body}`)
      if (seen.some((n) => n.body.includes(manifest.tokens.find((t) => t.state === 'issued-ec').organization))) {
        throw new Error('a reminder was shown for a certificate nowhere near expiry')
      }
    })

    await step('a key pulled out vanishes, plugged back in appears', async () => {
      const ec = serial('issued-ec')
      sim('remove', ec)
      const t0 = Date.now()
      await waitFor('the key to vanish', async () => !(await exists(`[data-serial="${ec}"]`)))
      console.log(`  vanished after ${Date.now() - t0} ms`)
      sim('insert', ec)
      const t1 = Date.now()
      await waitFor('the key to come back', () => exists(`[data-serial="${ec}"]`))
      console.log(`  appeared after ${Date.now() - t1} ms`)
    })

    await step('no key: the friendly picture, with 环境检测 naming a key whose driver is missing', async () => {
      // A Longmai GM3000 plugged in, its driver not installed; every simulated key pulled.
      plantUsb('1-1', '055c:e618', 'Longmai', 'mToken GM3000')
      for (const t of manifest.tokens) {
        sim('remove', t.serial)
        console.log(`  removed ${t.serial}`)
      }
      await waitFor('the empty state', () => exists('[data-testid=empty-state]'))
      const verdict = await waitFor(
        'the verdict on the empty state',
        async () => (await exists('[data-testid=empty-verdict]')) && text('[data-testid=empty-verdict]'),
        20000,
      )
      if (!verdict.includes('已插入 龙脉 mToken GM3000（055c:e618），但未安装其驱动')) throw new Error(`the empty state says: ${verdict}`)
      console.log(`  empty state: ${verdict.split('\n')[0]}`)
      const page = await text('[data-testid=empty-state]')
      for (const want of ['USB 接口', '集线器', '【补办】']) {
        if (!page.includes(want)) throw new Error(`the empty state lacks ${want}`)
      }
      await waitFor('the CA’s contacts', () => exists('[data-testid=empty-state] [data-testid=support-hotline]'), 15000)
      await shot('home-empty')

      // 环境检测: the same verdict, every finding, and the support bundle written.
      await click('[data-testid=empty-go-doctor]')
      await waitFor('the doctor page', () => exists('[data-testid=doctor-verdict]'), 20000)
      const sentence = await text('[data-testid=doctor-verdict] .sentence')
      if (!sentence.startsWith('已插入 龙脉 mToken GM3000（055c:e618），但未安装其驱动')) throw new Error(`环境检测 says: ${sentence}`)
      if (!(await exists('[data-testid=doctor-group-usb] [data-code=driver_missing][data-severity=problem]'))) throw new Error('no driver_missing finding')
      if (!(await exists('[data-testid=doctor-group-modules] [data-code=module_ok]'))) throw new Error('the simulator module is not reported')
      if (!(await exists('[data-testid=doctor-group-ca] [data-code=ca_ok]'))) throw new Error('the CA is not reported reachable')
      await click('[data-testid=support-bundle]')
      const bundle = await waitFor('the bundle', async () => (await exists('[data-testid=bundle-path]')) && text('[data-testid=bundle-path]'), 30000)
      const listed = execFileSync('tar', ['tzf', bundle], { encoding: 'utf8' })
      if (!listed.includes('keyward-support/doctor.json')) throw new Error(`the bundle holds: ${listed}`)
      const report = JSON.parse(execFileSync('tar', ['xzOf', bundle, 'keyward-support/doctor.json'], { encoding: 'utf8' }))
      if (!report.findings.some((f) => f.code === 'driver_missing' && f.detail.usb_id === '055c:e618')) throw new Error('the bundle’s report lacks the GM3000')
      console.log(`  support bundle ${bundle} (${listed.trim().split('\n').length} files)`)
      await shot('doctor')

      // 办理进度查询 with no key in: it says which key to plug in, and nothing else to do.
      await go('#/progress')
      await waitFor('the page asking for a key', () => exists('[data-testid=progress-page] [data-testid=no-key]'))
      if (await exists('[data-testid=progress-form]')) throw new Error('a PIN form with no key in')
      await shot('progress-empty')

      // The GM3000 unplugged; one key in: its card alone.
      rmSync(join(SYSFS_USB, '1-1'), { recursive: true, force: true })
      await go('#/')
      const one = serial('issued-rsa')
      sim('insert', one)
      await waitFor('the one key', async () => (await count('[data-testid=key-card]')) === 1)
      await waitFor('its seal action', () => exists(`[data-serial="${one}"] [data-testid=go-apply-seal]`))
      await shot('home-one-key')
      for (const t of manifest.tokens) if (t.serial !== one) sim('insert', t.serial)
      await waitFor('all keys back', async () => (await count('[data-testid=key-card]')) === everyKey)
    })

    await step('我的证书 shows the details and chain', async () => {
      await click(`[data-serial="${serial('issued-rsa')}"] [data-testid=view-cert]`)
      await waitFor('the certificate', () => exists('[data-testid=cert-org]'))
      await waitFor('the chain', () => exists('[data-testid=cert-chain]'))
      const org = await text('[data-testid=cert-org]')
      const want = manifest.tokens.find((t) => t.state === 'issued-rsa').organization
      if (want && !org.includes(want)) throw new Error(`organisation missing: ${org}`)
      // Beijing time, never UTC; 忘记密码 at the top; the raw details folded away.
      const page = await js('return document.querySelector("main").innerText')
      if (page.includes('UTC')) throw new Error(`a time in UTC: ${page}`)
      if (await js('return document.querySelector("[data-testid=cert-technical]").open')) throw new Error('技术信息 is open')
      await shot('certificate')
      await js('document.querySelector("[data-testid=cert-technical]").open = true')
      await js('document.querySelector("[data-testid=cert-technical]").scrollIntoView({ block: "start" })')
      await shot('certificate-technical')
      await js('window.scrollTo(0, 0); document.querySelector("main").scrollTo?.(0, 0)')
    })

    await step('导出证书: PEM and DER files that openssl reads, with the fingerprint shown', async () => {
      const dir = join(SHOTS, '..', 'export')
      rmSync(dir, { recursive: true, force: true })
      mkdirSync(dir, { recursive: true })
      const shown = (await js('return [...document.querySelectorAll("[data-testid=cert-technical] dd .value")].map((e) => e.textContent.trim())'))
        .find((v) => /^[0-9A-F]{64}$/.test(v))
      if (!shown) throw new Error('no SHA-256 fingerprint under 技术信息')
      await click('[data-testid=export-open]')
      await waitFor('the suggested file', async () => (await js('return document.querySelector("[data-testid=export-path]").value')).endsWith('.pem'))
      for (const [format, inform, name] of [['pem', 'PEM', '证书.pem'], ['der', 'DER', '证书.cer']]) {
        await click(`[data-testid=export-${format}]`)
        const file = join(dir, name)
        await new Promise((r) => setTimeout(r, 200))
        await type('[data-testid=export-path]', file)
        await click('[data-testid=export-save]')
        await waitFor(`the ${format} file written`, () => exists('[data-testid=export-done]'), 10000)
        const out = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-inform', inform, '-in', file], { stdio: 'pipe' })
        const got = out.toString().trim().split('=')[1].replaceAll(':', '')
        if (got !== shown) throw new Error(`${format}: openssl reads ${got}, the page shows ${shown}`)
        console.log(`  ${file}: openssl reads the certificate shown (${format})`)
      }
      await js('document.querySelector("[data-testid=export-form]").scrollIntoView({ block: "center" })')
      await shot('certificate-export', false)
    })

    await step('修改密码: a weak PIN is held back, a wrong PIN shows tries left, a good one changes', async () => {
      await click('[data-testid=change-pin]')
      await waitFor('the dialog', () => exists('[data-testid=pin-state]'))
      // The cursor is in the first field, and the dialog fits the window it opens in.
      const focused = await js('return document.activeElement?.dataset.testid')
      if (focused !== 'old-pin') throw new Error(`the cursor is in ${focused}`)
      const fits = await js('const r = document.querySelector("[data-testid=pin-dialog]").getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight')
      if (!fits) throw new Error('the PIN dialog runs off the window')
      await changePin(USER_PIN, 'weak')
      const disabled = await js('return document.querySelector("[data-testid=pin-submit]").disabled')
      if (!disabled) throw new Error('a weak PIN could be submitted')
      await shot('change-pin-checklist')

      await changePin('Wrong#2026', 'Better#2027pin')
      await click('[data-testid=pin-submit]')
      await waitFor('the wrong-PIN message', () => exists('[data-testid=error][data-code=pin_incorrect]'))
      const msg = await text('[data-testid=error]')
      if (!msg.includes('已输错 1 次，再错 9 次将锁定')) throw new Error(`wrong PIN message: ${msg}`)
      const fields = await js(
        'return [...document.querySelectorAll("input[type=password]")].map((i) => i.value).join("")',
      )
      if (fields !== '') throw new Error('PIN fields were not cleared')
      await shot('change-pin-wrong')

      await changePin(USER_PIN, 'Better#2027pin')
      await click('[data-testid=pin-submit]')
      await waitFor('the change to be done', () => exists('[data-testid=pin-done]'))
      await js('document.querySelector("[data-testid=pin-dialog]").scrollIntoView({ block: "center" })')
      await new Promise((r) => setTimeout(r, 500))
      await shot('pin-changed')
      await click('[data-testid=pin-dialog] button.primary')
    })

    await step('wrong PINs run a key down: count low, final try confirmed, locked → 忘记密码', async () => {
      const key = serial('expired')
      await runDown(key, { countLow: 'change-pin-count-low', finalTry: 'change-pin-final-try' })
      await shot('unlock-locked')
      await go('#/')
      await waitFor('the locked key on the home page', async () =>
        (await text(`[data-serial="${key}"] [data-testid=key-pin]`)).includes('已锁定'),
      )
      await shot('home-locked', false)
    })

    await step('证书续期 on an expired certificate says to apply anew, with the CA’s contacts', async () => {
      // Home leads the expired (and locked) key to 新申请, not to 忘记密码.
      const key = serial('expired')
      const card = `[data-serial="${key}"]`
      const next = await text(`${card} [data-testid=key-next]`)
      if (next !== '证书已过期，需按【新申请】重新办理') throw new Error(`the expired key says: ${next}`)
      if (await exists(`${card} a[href*="/unlock/"]`)) throw new Error('an expired key is sent to 忘记密码')
      await go(`#/renew?serial=${key}`)
      await waitFor('the eligibility', () => exists('[data-testid=renew-eligibility][data-status=expired]'))
      await waitFor('the CA’s contacts', () => exists('[data-testid=renew-eligibility] [data-testid=support-hotline]'), 15000)
      const said = await text('[data-testid=renew-eligibility]')
      if (!said.includes('证书已过期，需按【新申请】重新办理') || !said.includes('已过期') || said.includes('还有')) {
        throw new Error(`证书续期 says: ${said}`)
      }
      if (await exists('[data-testid=wizard-steps]')) throw new Error('the renewal steps are shown for an expired certificate')
      await shot('renew-expired')
    })

    // The browser bridge: a page's client against the app's bridge, answered in the window.
    await bridgeSteps({
      step, waitFor, js, click, text, exists, type, go, sim, shot, serial, manifest, USER_PIN,
      APP, APP_DIR, BRIDGE: env('KEYWARD_E2E_BRIDGE'), DISPLAY: env('KEYWARD_E2E_DISPLAY'),
    })

    await step('设置与关于: language, drivers, the CA and its pinned root, version', async () => {
      await go('#/settings')
      await waitFor('the drivers', () => exists('[data-testid=driver]'))
      await waitFor('the pinned root', () => exists('[data-testid=ca-root-sha256]'))
      // 高级 is folded while the CA and its root are fine; the version is up front.
      if (await js('return document.querySelector("[data-testid=advanced]").open')) throw new Error('高级 open with nothing to fix')
      await shot('settings')
      await openAdvanced()
      // The fingerprint shown is the CA root's, as openssl and this file compute it.
      const pem = readFileSync(CA_ROOT, 'utf8')
      const want = fingerprint(pem)
      const byOpenssl = opensslFingerprint(CA_ROOT)
      if (byOpenssl && byOpenssl !== want) throw new Error(`openssl says ${byOpenssl}, node ${want}`)
      // As shown, in rows of eight pairs.
      const shown = (await text('[data-testid=ca-root-sha256]')).replace(/\s+/g, '')
      if (shown !== want) throw new Error(`设置 shows ${shown}, the CA's root is ${want}`)
      console.log(`  root fingerprint ${want.slice(0, 23)}… matches${byOpenssl ? ' openssl' : ''}`)
      if (!(await text('[data-testid=ca-root-source]')).includes('KEYWARD_CA_ROOT')) throw new Error('the root’s source is not named')
      // One version for everything, with the commit the app was built from.
      const version = await text('[data-testid=version]')
      const cli = execFileSync(CLI, ['--version'], { encoding: 'utf8' }).trim().replace(/^keyward /, '')
      if (!/^Keyward \d+\.\d+\.\d+ \((?:[0-9a-f]{12}|unknown)\)$/.test(version) || version !== `Keyward ${cli}`) {
        throw new Error(`设置 shows ${version}; keyward --version says ${cli}`)
      }
      console.log(`  ${version}, as keyward --version`)
      await js('document.querySelector("[data-testid=ca-settings]").scrollIntoView()')
      await shot('settings-advanced', false)
      await click('[data-lang=en]')
      await waitFor('English', async () => (await text('h1')).includes('Settings'))
      await go('#/')
      await waitFor('English home', async () => (await text('h1')).includes('USB keys'))
      await shot('home-en')
      await go('#/settings')
      await click('[data-lang=zh-TW]')
      await waitFor('繁體中文', async () => (await text('h1')).includes('設定'))
      await go('#/')
      await waitFor('the home page in 繁體中文', async () => (await text('[data-testid=nav]')).includes('憑證續期'))
      await shot('home-zh-TW')
      await go('#/settings')
      await click('[data-lang=zh-CN]')
      await waitFor('Chinese again', async () => (await text('h1')).includes('设置'))
    })

    await step('设置: a root is pinned only as confirmed in the window, as the app’s own copy', async () => {
      await go('#/settings')
      await waitFor('the root form', () => exists('[data-testid=ca-root-path]'))
      await openAdvanced()
      // A bundle (the root twice) is refused: trusting two while showing one would be a lie.
      const bundle = join(SHOTS, '..', 'root-bundle.pem')
      writeFileSync(bundle, readFileSync(CA_ROOT, 'utf8').repeat(2))
      await type('[data-testid=ca-root-path]', bundle)
      await click('[data-testid=ca-root-inspect]')
      await waitFor('the bundle refused', () => exists('[data-testid=ca-root] [data-testid=error][data-code=ca_root_bundle]'))
      if (await exists('[data-testid=ca-root-confirm]')) throw new Error('a bundle was offered for confirmation')
      await shot('settings-root-bundle', false)
      // The CA's root as handed to the operator: checked, compared, confirmed.
      const handed = join(SHOTS, '..', 'root-from-the-ca.pem')
      copyFileSync(CA_ROOT, handed)
      const want = fingerprint(readFileSync(handed, 'utf8'))
      await type('[data-testid=ca-root-path]', handed)
      await click('[data-testid=ca-root-inspect]')
      await waitFor('the confirmation', () => exists('[data-testid=ca-root-confirm]'))
      const offered = await js('return document.querySelector("[data-testid=ca-root-confirm-sha256]").dataset.sha256')
      if (offered !== want) throw new Error(`the confirmation shows ${offered}, the file is ${want}`)
      await js('document.querySelector("[data-testid=ca-root]").scrollIntoView()')
      await shot('settings-root-confirm')
      await click('[data-testid=ca-root-confirm-button]')
      await waitFor('the root pinned', () => exists('[data-testid=ca-root-pinned]'))
      const copies = readdirSync(APP_DIR).filter((f) => f.startsWith('ca-root-') && f.endsWith('.pem'))
      if (copies.length !== 1) throw new Error(`pinned copies in ${APP_DIR}: ${copies}`)
      if (fingerprint(readFileSync(join(APP_DIR, copies[0]), 'utf8')) !== want) throw new Error('the copy is not the root confirmed')
      // The original replaced afterwards: nothing changes.
      writeFileSync(handed, readFileSync(bundle, 'utf8'))
      await go('#/')
      await go('#/settings')
      await waitFor('the pinned root again', () => exists('[data-testid=ca-root-sha256]'))
      await openAdvanced()
      if ((await text('[data-testid=ca-root-sha256]')).replace(/\s+/g, '') !== want) throw new Error('the pinned root followed its original')
      if (!(await text('[data-testid=ca-root-source]')).includes(handed)) throw new Error('the copy’s origin is not named')
      await js('document.querySelector("[data-testid=ca-root]").scrollIntoView()')
      await shot('settings-root-pinned', false)
      // A plain-http address to another computer is refused; the CA's stays.
      await type('[data-testid=ca-url]', 'http://ca.example.cn:8750')
      await click('[data-testid=ca-save]')
      await waitFor('http refused', () => exists('[data-testid=ca-settings] [data-testid=error][data-code=ca_url_insecure]'))
      await js('document.querySelector("[data-testid=ca-settings]").scrollIntoView()')
      await shot('settings-http-refused')
      const saved = JSON.parse(readFileSync(join(APP_DIR, 'settings.json'), 'utf8'))
      if (saved.ca_url && saved.ca_url !== CA_URL) throw new Error(`the CA address became ${saved.ca_url}`)
      await type('[data-testid=ca-url]', CA_URL)
      await click('[data-testid=ca-save]')
      await waitFor('the address saved', () => exists('[data-testid=ca-saved]'))
    })

    await step('激活证书: the SMS code and a new PIN twice', async () => {
      await go('#/')
      await waitFor('the issued key', async () => (await text(`[data-serial="${blank}"]`)).includes(ORG))
      // The key raises no "to be changed" flag after the station's C_InitPIN: Home knows it
      // waits for activation from the CA.
      const card = `[data-serial="${blank}"]`
      await waitFor('the CA\'s word: to be activated', () => exists(`${card} [data-waiting=awaiting_activation]`), 15000)
      const next = await text(`${card} [data-testid=key-next]`)
      if (!next.includes('激活')) throw new Error(`the issued key says: ${next}`)
      await js('document.querySelector(arguments[0]).scrollIntoView()', card)
      await shot('home-to-activate')
      await go(`#/activate?serial=${blank}`)
      // The station's SMS carries no code: the page asks for one first, and nothing can be
      // typed before.
      await waitFor('the activation page', () => exists('[data-testid=send-code]'))
      if (await exists('[data-testid=sms-code]')) throw new Error('a code field before any code was asked for')
      await shot('activate-ask')
      await click('[data-testid=send-code]')
      await waitFor('where the code went', () => exists('[data-testid=code-sent]'), 15000)
      const reference = await js('return document.querySelector("[data-testid=code-sent]").dataset.reference')
      const sentText = await text('[data-testid=code-sent]')
      if (!/^\d{2}$/.test(reference) || !sentText.includes(`编号为 ${reference}`)) throw new Error(`the page says: ${sentText}`)
      await type('[data-testid=sms-code]', smsCode(blank, reference))
      await type('[data-testid=new-pin]', NEW_PIN)
      await type('[data-testid=new-pin-again]', NEW_PIN)
      await shot('activate')
      await click('[data-testid=activate-submit]')
      await waitFor('the activation', () => exists('[data-testid=activate-done]'), 30000)
      // The guides' next step, from Keyward itself: 绑定 on the portal, through the bridge.
      await waitFor('the 绑定 step', () => exists('[data-testid=bind-bridge]'), 10000)
      const bind = await text('[data-testid=bind-next]')
      if (!bind.includes('登录采购平台【CA 管理】-【绑定】') || !bind.includes(ORG)) throw new Error(`the next step says: ${bind}`)
      await shot('activate-done')
      await go('#/')
      await waitFor('no activation waiting any more', async () =>
        !(await exists(`[data-serial="${blank}"] [data-waiting=awaiting_activation]`)),
      15000)
    })

    await step('300 days later, 证书续期: apply, the order confirmed and paid, 安装证书 pulled out and resumed', async () => {
      await stopCa()
      // While the CA is down: asking it for anything (here a new activation code) fails, and
      // the error says so, with the contacts kept from the last fetch.
      await go(`#/activate?serial=${blank}`)
      await waitFor('the activation page', () => exists('[data-testid=send-code]'))
      await click('[data-testid=send-code]')
      await waitFor(
        'the CA-unreachable error with the kept contacts',
        () => exists('[data-testid=error] [data-testid=support-stale]'),
        30000,
      )
      const code = await js('return document.querySelector("[data-testid=error]").dataset.code')
      if (code !== 'ca_offline') throw new Error(`the CA stopped gives ${code}`)
      const stale = await text('[data-testid=support-stale]')
      if (!/上次获取于 \d{4}-\d{2}-\d{2} \d{2}:\d{2}/.test(stale) || stale.includes('UTC')) throw new Error(`the kept copy says: ${stale}`)
      await js('document.querySelector("[data-testid=error]").scrollIntoView()')
      await shot('ca-unreachable')
      await startCa(0)
      // The key's own clock is today's: its certificate, made 300 days ago, is in the window.
      await go('#/')
      await go(`#/renew?serial=${blank}`)
      await waitFor('the application form', () => exists('[data-testid=renew-apply-form]'), 15000)
      await js(
        `const s = document.querySelector('[data-testid=renew-years]'); s.value = '2'; s.dispatchEvent(new Event('change'))`,
      )
      await waitFor('the fee for two years', async () => (await text('[data-testid=renew-fee]')).includes('400'))
      await type('[data-testid=invoice-title]', ORG)
      await type('[data-testid=invoice-tax-id]', '91440101MA5DM00032')
      await type('[data-testid=invoice-email]', 'caiwu@example.cn')
      await type('[data-testid=pin]', NEW_PIN)
      await shot('renew')
      await click('[data-testid=renew-apply]')
      await waitFor('the payment', () => exists('[data-testid=renew-pay-button]'), 30000)
      // Before paying, the order as the CA will carry it out: company, years, fee, the new
      // expiry, the invoice address, when the invoice comes, no refund; the button says the
      // price and never the sandbox.
      const order = await text('[data-testid=renew-pay]')
      for (const want of [ORG, '2 年', '400 元', 'caiwu@example.cn', '电子发票 1–2 个工作日内推送', '支付后不能退款']) {
        if (!order.includes(want)) throw new Error(`the confirmation lacks ${want}: ${order}`)
      }
      const payLabel = await text('[data-testid=renew-pay-button]')
      if (payLabel !== '确认支付 400 元' || (await js('return document.body.innerText')).includes('沙箱')) {
        throw new Error(`the pay button says: ${payLabel}`)
      }
      if (!(await js('return document.querySelector("[data-testid=renew-pay-button]").disabled'))) {
        throw new Error('paying was possible before the order was confirmed')
      }
      await click('[data-testid=renew-confirm-check]')
      await js('document.querySelector("[data-testid=renew-eligibility]").scrollIntoView({ block: "start" })')
      await shot('renew-confirm-pay')
      await click('[data-testid=renew-pay-button]')
      await waitFor('安装证书', () => exists('[data-testid=renew-install-button]'), 30000)

      // Home and the navigation show the certificate waiting to be installed.
      await go('#/')
      const card = `[data-serial="${blank}"]`
      await waitFor('the install-waiting badge', () => exists(`${card} [data-waiting=install_certificate]`), 15000)
      await waitFor('the navigation badge', () => exists('[data-testid=nav-badge-renew]'))
      const next = await text(`${card} [data-testid=key-next]`)
      if (!next.includes('安装证书')) throw new Error(`the paid key says: ${next}`)
      await js('document.querySelector(arguments[0]).scrollIntoView()', card)
      await shot('home-install-waiting')
      await click(`${card} a.button.primary`)
      await waitFor('安装证书 again', () => exists('[data-testid=renew-install-button]'), 15000)

      // The key is pulled out while the new certificate is being written.
      sim('fault', 'C_CreateObject', '--remove-token')
      await type('[data-testid=pin]', NEW_PIN)
      await shot('renew-install')
      await click('[data-testid=renew-install-button]')
      // The page stays with the key that was pulled out, names it by its company, says the
      // payment and the old certificate are safe, and asks for it back.
      await waitFor('the key-out notice', () => exists('[data-testid=renew-key-out]'), 60000)
      await waitFor('the key-missing note', () => exists('[data-testid=key-missing]'))
      const out = await text('[data-testid=renew-key-out]')
      for (const want of [ORG, '已支付的费用和原证书都安全', '插回后点继续安装']) {
        if (!out.includes(want)) throw new Error(`the notice lacks ${want}: ${out}`)
      }
      await shot('renew-interrupted')
      sim('clear-faults')
      sim('insert', blank)
      await waitFor('the key back, the notice gone, the install offered to resume', async () =>
        !(await exists('[data-testid=error]')) &&
        !(await exists('[data-testid=renew-key-out]')) &&
        (await exists('[data-testid=renew-resume]')) &&
        (await text('[data-testid=renew-install-button]')).includes('继续安装'),
      15000)
      if (!(await text('[data-testid=renew-resume]')).includes(ORG)) throw new Error('the resume note does not name the key')
      await type('[data-testid=pin]', NEW_PIN)
      await js('document.querySelector("[data-testid=renew-install]").scrollIntoView({ block: "start" })')
      await shot('renew-resume')
      // Writing the certificate takes the key a few seconds this time (the simulator holds the
      // call, as a slow key does): the progress bar, through the command's channel, meanwhile.
      sim('fault', 'C_CreateObject', '--hang', '4')
      await click('[data-testid=renew-install-button]')
      await waitFor('the progress bar at the write', async () =>
        (await exists('[data-testid=step-progress][data-step=writing]')), 20000)
      if (await exists('[data-testid=renew-resume]')) throw new Error('the resume note stayed while the install runs')
      await js('document.querySelector("[data-testid=renew-install-button]").scrollIntoView({ block: "end" })')
      await shot('renew-installing')
      sim('clear-faults')
      await waitFor('the new certificate', () => exists('[data-testid=renew-done]'), 60000)
      await waitFor('the 绑定 step after renewal', () => exists('[data-testid=bind-next]'), 10000)
      await shot('renew-done', false)
    })

    await step('申请印章 with a PNG scan; the CA approves; 安装印章', async () => {
      await go(`#/seal?serial=${blank}`)
      await waitFor('the seal form', () => exists('[data-testid=seal-apply-form]'), 15000)
      // 下载电子印章申请表: the CA's form, saved where the page says.
      await click('[data-testid=seal-form-download]')
      await waitFor('where the form went', () => exists('[data-testid=seal-form-saved]'), 15000)
      const saved = (await text('[data-testid=seal-form-saved]')).split('：').slice(1).join('：').trim()
      if (saved !== join(DOWNLOADS, '电子印章申请表.html')) throw new Error(`the form was saved as ${saved}, not in ${DOWNLOADS}`)
      if (!readFileSync(saved, 'utf8').includes('<title>电子印章申请表</title>')) throw new Error(`${saved} is not the seal form`)
      // The seal carries the registered name, not something typed; the rules before submit.
      if ((await text('[data-testid=seal-name-fixed]')) !== ORG) throw new Error('the seal name is not the registered one')
      const rules = await text('[data-testid=seal-rules]')
      if (!rules.includes('每张证书只能有一枚电子印章') || !rules.includes('单位名称变更须办理【变更】')) throw new Error(`the rules: ${rules}`)
      await chooseFile('[data-testid=seal-scan]', 'stamp-scan.png', 'image/png', scanPng())
      await waitFor('the preview', () => exists('[data-testid=file-preview] img'))
      // The scan itself shows (the window's content policy lets the page's blob: URL through),
      // not only its name; the button reads in Keyward's language.
      const size = await waitFor('the scan drawn', () =>
        js('const i = document.querySelector("[data-testid=file-preview] img"); return i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null'),
      )
      if (size[0] !== 120 || size[1] !== 120) throw new Error(`the preview is ${size}`)
      const chooser = await text('[data-testid=seal-scan-button]')
      if (chooser !== '选择文件') throw new Error(`the file button reads ${chooser}`)
      await type('[data-testid=pin]', NEW_PIN)
      await shot('seal-apply')
      await click('[data-testid=seal-apply]')
      await waitFor('the review', () => exists('[data-testid=seal-review]'), 30000)
      await shot('seal-review')
      const queue = JSON.parse(ca(['review', 'list', '--json']))
      const item = (queue.items ?? []).find((i) => (i.business ?? i).key_serial === blank)
      if (!item) throw new Error(`nothing to review for ${blank}: ${JSON.stringify(queue)}`)
      // As the staff account whose token the tool reads (the bootstrap admin's here).
      ca(['review', 'approve', (item.business ?? item).id, '--note', '印模清晰，同意制作'])
      await click('[data-testid=seal-check]')
      await waitFor('安装印章', () => exists('[data-testid=seal-install-button]'), 15000)
      // The seal the CA made waits on Home too.
      await go('#/')
      await waitFor('the seal-waiting badge', () => exists(`[data-serial="${blank}"] [data-waiting=install_seal]`), 15000)
      await waitFor('the navigation badge', () => exists('[data-testid=nav-badge-seal]'))
      await go(`#/seal?serial=${blank}`)
      await waitFor('安装印章 again', () => exists('[data-testid=seal-install-button]'), 15000)
      await type('[data-testid=pin]', NEW_PIN)
      await shot('seal-install')
      await click('[data-testid=seal-install-button]')
      await waitFor('the seal on the key', () => exists('[data-testid=seal-image]'), 60000)
      const shown = await text('[data-testid=seal-shown]')
      if (!shown.includes('与本证书匹配') || shown.includes('绑定')) throw new Error(`the seal says: ${shown}`)
      await shot('seal')
      // 我的证书 shows the seal the key now holds.
      await go(`#/cert/${blank}`)
      await waitFor('the seal on 我的证书', () =>
        js('const i = document.querySelector("[data-testid=cert-seal-image]"); return !!i && i.complete && i.naturalWidth > 0'),
      15000)
    })

    await step('签章: a PDF stamped with the seal just installed, checked from outside, the original untouched', async () => {
      const dir = join(SHOTS, '..', 'stamp')
      const input = tenderPdf(dir)
      const before = sha256(input)
      // The key's card offers 签章 now that it holds a seal.
      await go('#/')
      const card = `[data-serial="${blank}"]`
      await waitFor('签章 on the card', () => exists(`${card} [data-testid=go-stamp]`), 15000)
      await click(`${card} [data-testid=go-stamp]`)
      await waitFor('the 签章 page', () => exists('[data-testid=stamp-path]'))
      await type('[data-testid=stamp-path]', input)
      await click('[data-testid=stamp-open]')
      await waitFor('the pages', async () => (await count('[data-testid=stamp-page-outline]')) === 2, 15000)
      // Outlines in the pages' proportions: portrait, then landscape.
      const ratios = await js(
        `return [...document.querySelectorAll('[data-testid=stamp-page-outline]')].map((e) => e.getBoundingClientRect().width / e.getBoundingClientRect().height)`,
      )
      if (!(Math.abs(ratios[0] - 595 / 842) < 0.02 && Math.abs(ratios[1] - 842 / 595) < 0.02)) throw new Error(`page outlines ${ratios}`)
      const suggested = join(dir, '投标书-已盖章.pdf')
      const output = await js('return document.querySelector("[data-testid=stamp-output]").value')
      if (output !== suggested) throw new Error(`the page suggests ${output}`)
      // The seal placed by a click on page 1, over the grey block.
      await clickPage(1, 150, 200)
      await waitFor('the seal on page 1', () => exists('[data-page="1"] [data-testid=stamp-seal]'))
      // Where the page says the seal is, to within the pointer's whole pixel (1.5 mm here).
      const where = await text('[data-testid=stamp-place]')
      const [, pg, x, y] = where.match(/第 (\d+) 页，距左边 ([\d.]+) 毫米、距顶边 ([\d.]+) 毫米/) ?? []
      if (pg !== '1' || Math.abs(x - 150) > 2 || Math.abs(y - 200) > 2) throw new Error(`the page says: ${where}`)
      // An existing file is never replaced: refused before the PIN, the file as it was.
      const taken = join(dir, '投标书-旧稿.pdf')
      writeFileSync(taken, 'an earlier copy')
      await type('[data-testid=stamp-output]', taken)
      await type('[data-testid=pin]', NEW_PIN)
      await click('[data-testid=stamp-submit]')
      await waitFor('the existing output refused', () => exists('[data-testid=error][data-code=output_exists]'), 30000)
      if (readFileSync(taken, 'utf8') !== 'an earlier copy') throw new Error('an existing file was changed')
      if (await js('return document.querySelector("[data-testid=pin]").value')) throw new Error('the PIN field was not emptied')
      // The suggested name back, as the operator would retype it (the field, re-enabled after
      // the call, is set the way typing sets it: its value, then an input event).
      await js(
        `const el = document.querySelector('[data-testid=stamp-output]')
         el.value = arguments[0]
         el.dispatchEvent(new Event('input', { bubbles: true }))`,
        suggested,
      )
      if ((await js('return document.querySelector("[data-testid=stamp-output]").value')) !== suggested) throw new Error('the output name was not set')
      await type('[data-testid=pin]', NEW_PIN)
      if (await exists('[data-testid=error]')) throw new Error('the refusal stayed after another name was typed')
      await js('document.querySelector("[data-testid=stamp-form]").scrollIntoView({ block: "start" })')
      await shot('stamp')
      await click('[data-testid=stamp-submit]')
      await waitFor('the stamp and its check', () => exists('[data-testid=stamp-report]'), 60000)
      const report = await text('[data-testid=stamp-signature]')
      for (const want of [ORG, '91440101MA5DM00032']) if (!report.includes(want)) throw new Error(`the check says: ${report}`)
      if ((await js('return document.querySelector("[data-testid=stamp-report]").dataset.valid')) !== 'true') {
        throw new Error(`the check failed: ${report}`)
      }
      for (const f of ['sig-intact', 'sig-unchanged', 'sig-chain', 'sig-seal-bound']) {
        if ((await text(`[data-testid=${f}]`)) !== '是') throw new Error(`${f}: ${report}`)
      }
      await js('document.querySelector("[data-testid=stamp-done]").scrollIntoView({ block: "start" })')
      await shot('stamp-done')
      // From outside: poppler's pdfsig, trusting only the CA's root, finds it valid.
      const sig = pdfsig(suggested, CA_ROOT, dir)
      for (const want of ['Signature Validation: Signature is Valid.', 'Certificate Validation: Certificate is Trusted.', 'ETSI.CAdES.detached']) {
        if (!sig.includes(want)) throw new Error(`pdfsig says:\n${sig}`)
      }
      if ((sig.match(/\nSignature #/g) ?? []).length !== 1) throw new Error(`pdfsig says:\n${sig}`)
      // The original is byte for byte what it was, and the stamp was appended to it.
      if (sha256(input) !== before) throw new Error('the original changed')
      const original = readFileSync(input)
      if (!readFileSync(suggested).subarray(0, original.length).equals(original)) throw new Error('the stamp is not an incremental update')
      console.log(`  stamped ${suggested}: pdfsig valid and trusted, the original unchanged`)
    })

    await step('办理进度查询: the PIN, then every business with its timeline', async () => {
      await go('#/')
      await go('#/progress')
      const pick = `[data-testid=key-picker] [data-serial="${blank}"]`
      await waitFor('the key picker', () => exists(pick))
      await click(pick)
      // The CA shows a key's businesses to the key alone: nothing before the PIN.
      await waitFor('the PIN form', async () => (await exists('[data-testid=progress-form]')) && (await exists('[data-testid=pin-state]')))
      if (await count('[data-testid=business]')) throw new Error('businesses shown before the PIN')
      const intro = await text('[data-testid=progress-intro]')
      if (!intro.includes('输入证书密码以查看本证书的全部业务')) throw new Error(`the page says: ${intro}`)
      await type('[data-testid=pin]', NEW_PIN)
      await shot('progress-pin')
      await click('[data-testid=progress-submit]')
      await waitFor('the businesses', async () => (await count('[data-testid=business]')) >= 3, 15000)
      if (await exists('[data-testid=pin]')) throw new Error('the PIN field stayed')
      await shot('progress')
    })

    await step('忘记密码: locked; another requester’s unlock named, the handler’s own goes through; SMS code, new PIN', async () => {
      await runDown(blank)
      // Before anything is sent, the page says how long a review takes, who is approved at
      // once, and what a review needs.
      const intro = await text('[data-testid=unlock-intro]')
      if (!intro.includes('约需 2 个工作日') || !intro.includes('短信')) throw new Error(`the intro says: ${intro}`)
      if (!(await text('[data-testid=unlock-rule]')).includes('自动审核只认最近一笔业务登记的经办人本人')) throw new Error('no rule before submitting')
      // A colleague, not the handler: documents, then a reviewer, who rejects it.
      await type('[data-testid=requester-name]', '赵同事')
      await type('[data-testid=requester-id]', '44010119930506123X')
      await type('[data-testid=requester-phone]', '13700137003')
      await click('[data-testid=unlock-apply]')
      await waitFor('the documents step', () => exists('[data-testid=unlock-docs]'), 30000)
      await chooseFile('[data-testid=attach-file]', 'id-card.png', 'image/png', scanPng())
      await click('[data-testid=attach-upload]')
      await waitFor('the upload', () => exists('[data-testid=uploaded]'), 30000)
      await click('[data-testid=unlock-submit]')
      await waitFor('the review', () => exists('[data-testid=unlock-review]'), 30000)
      const waiting = await text('[data-testid=unlock-review]')
      if (!waiting.includes('约需 2 个工作日') || !waiting.includes('137****7003')) throw new Error(`the review says: ${waiting}`)
      await shot('unlock-review')
      const queue = JSON.parse(ca(['review', 'list', '--json']))
      const item = (queue.items ?? []).find((i) => (i.business ?? i).key_serial === blank && (i.business ?? i).kind === 'unlock')
      if (!item) throw new Error(`no unlock to review for ${blank}: ${JSON.stringify(queue)}`)
      ca(['review', 'reject', (item.business ?? item).id, '--note', '授权书未加盖公章'])
      await click('[data-testid=unlock-check]')
      await waitFor('the rejection', () => exists('[data-testid=unlock-rejected]'), 15000)
      if (!(await text('[data-testid=unlock-rejected]')).includes('授权书未加盖公章')) throw new Error('the reason is not shown')
      // The colleague's phone is told too.
      const told = JSON.parse(ca(['sms', '--json', '--url', CA_URL])).messages.filter((m) => m.key_serial === blank && m.text.includes('未通过审核'))
      if (!told.length) throw new Error('no SMS told the colleague of the rejection')
      await shot('unlock-rejected')
      await click('[data-testid=unlock-again]')
      await waitFor('the form again', () => exists('[data-testid=requester-name]'))
      // Someone else applied to unlock this key, from another computer (the command line).
      const other = { name: '王某某', id: '440101199204051235', phone: '13900139002' }
      execFileSync(
        CLI,
        ['--ca', CA_URL, '--ca-root', CA_ROOT, '--data-dir', join(SHOTS, '..', 'other-computer'), '--json',
          'unlock', 'apply', '--token', blank, '--name', other.name, '--id-number', other.id, '--phone', other.phone],
        { stdio: 'pipe' },
      )
      // A colleague here, not the handler: the other unlock is named and not taken over.
      await type('[data-testid=requester-name]', '赵同事')
      await type('[data-testid=requester-id]', '44010119930506123X')
      await type('[data-testid=requester-phone]', '13700137003')
      await click('[data-testid=unlock-apply]')
      await waitFor('the other unlock named', () => exists('[data-testid=unlock-by-other]'), 30000)
      const notice = await text('[data-testid=unlock-by-other]')
      if (!notice.includes('王*') || !notice.includes('139****9002')) throw new Error(`the notice says: ${notice}`)
      await js('document.querySelector("[data-testid=unlock-by-other]").scrollIntoView()')
      await shot('unlock-by-other')
      // The handler of record: their own application goes through (the CA ends the other).
      await type('[data-testid=requester-name]', HANDLER.name)
      await type('[data-testid=requester-id]', HANDLER.id)
      await type('[data-testid=requester-phone]', HANDLER.phone)
      await shot('unlock-identity')
      await click('[data-testid=unlock-apply]')
      // The handler on record is approved at once, the code sent with the approval.
      await waitFor('the code and new PIN form', () => exists('[data-testid=unlock-finish]'), 30000)
      if (await exists('[data-testid=unlock-by-other]')) throw new Error('the other unlock is still shown')
      await type('[data-testid=sms-code]', smsCode(blank))
      await type('[data-testid=new-pin]', UNLOCKED_PIN)
      await type('[data-testid=new-pin-again]', UNLOCKED_PIN)
      await shot('unlock-code')
      await click('[data-testid=unlock-finish]')
      await waitFor('the key unlocked', () => exists('[data-testid=unlock-done]'), 60000)
      await shot('unlock-done', false)
      await go('#/')
      await waitFor('the PIN back to normal on Home', async () =>
        (await text(`[data-serial="${blank}"] [data-testid=key-pin]`)).includes('正常'),
      15000)
      // The new PIN works: 修改密码 accepts it as the old one.
      await go(`#/cert/${blank}`)
      await waitFor('its certificate', () => exists('[data-testid=change-pin]'))
      await click('[data-testid=change-pin]')
      await waitFor('the dialog', () => exists('[data-testid=pin-state]'))
      await changePin(UNLOCKED_PIN, NEW_PIN)
      await click('[data-testid=pin-submit]')
      await waitFor('the PIN changed with the unlocked one', () => exists('[data-testid=pin-done]'))
      await click('[data-testid=pin-dialog] button.primary')
    })

    await step('measured: insert → key on Home, 20 times', async () => {
      await go('#/')
      const key = serial('issued-ec')
      const card = `[data-serial="${key}"]`
      const times = []
      for (let i = 0; i < 20; i++) {
        sim('remove', key)
        await waitFor('the key to vanish', async () => !(await exists(card)))
        // The page notes when the card appears, on the system clock this process reads too.
        await js(
          `window.__seen = null
           const sel = arguments[0]
           const obs = new MutationObserver(() => {
             if (document.querySelector(sel)) { window.__seen = Date.now(); obs.disconnect() }
           })
           obs.observe(document.body, { childList: true, subtree: true })`,
          card,
        )
        const t0 = Date.now()
        sim('insert', key)
        const seen = await waitFor('the key to come back', () => js('return window.__seen'))
        times.push(seen - t0)
      }
      times.sort((a, b) => a - b)
      const at = (q) => times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)]
      measured.insert = { n: times.length, median_ms: at(0.5), p95_ms: at(0.95), max_ms: times.at(-1) }
      console.log(`  insert → Home: median ${at(0.5)} ms, p95 ${at(0.95)} ms over ${times.length}`)
    })
  } finally {
    await wd('DELETE', s('')).catch(() => {})
  }
  try {
    await step('measured: app start to interactive Home with two keys, and its memory', async () => {
      const keep = [serial('issued-ec'), serial('issued-rsa')]
      for (const t of manifest.tokens) if (!keep.includes(t.serial)) sim('remove', t.serial)
      const t0 = Date.now()
      session = (
        await wd('POST', '/session', {
          capabilities: { alwaysMatch: { browserName: 'wry', 'tauri:options': { application: APP } } },
        })
      ).sessionId
      await waitFor('two keys on Home', async () => (await count('[data-testid=key-card]')) === 2, 20000)
      const ms = Date.now() - t0
      const rss = appRssKb()
      measured.start = { ms, rss_mb: rss ? Math.round(rss / 1024) : null }
      console.log(`  start → two keys on Home: ${ms} ms; RSS ${measured.start.rss_mb ?? '?'} MB`)
      writeFileSync(join(SHOTS, '..', 'desktop-measured.json'), JSON.stringify(measured, null, 2))
    })
  } finally {
    await wd('DELETE', s('')).catch(() => {})
    await stopCa()
  }
  console.log(`\n${steps.length} steps passed; ${shots.length} screenshots in ${SHOTS}`)
}

main().catch((e) => {
  console.error(`✗ ${e.message}`)
  process.exit(1)
})
