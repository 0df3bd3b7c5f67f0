// End-to-end run of the built desktop app over simulated USB keys, through tauri-driver
// (WebDriver) and WebKitWebDriver. `cargo xtask e2e` starts Xvfb, the driver and the keys,
// then runs this file with plain Node: the WebDriver protocol is a few HTTP calls, so no
// browser-automation library is needed.
//
// What it proves: the app starts and lists every key; a key pulled out vanishes and comes
// back without a click; the certificate details show; 修改密码 refuses a weak PIN before the
// key sees it, reports tries left after a wrong PIN, changes a PIN; wrong PINs run a key
// down to its final try (explicit confirmation) and the lock sends the operator to 忘记密码.
// Each screen is photographed.

import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

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
async function step(name, fn) {
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

async function changePin(oldPin, newPin, again = newPin) {
  await type('[data-testid=old-pin]', oldPin)
  await type('[data-testid=new-pin]', newPin)
  await type('[data-testid=new-pin-again]', again)
}

async function main() {
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

    await step('no key: the friendly picture', async () => {
      for (const t of manifest.tokens) {
        sim('remove', t.serial)
        console.log(`  removed ${t.serial}`)
      }
      await waitFor('the empty state', () => exists('[data-testid=empty-state]'))
      await shot('home-empty')
      for (const t of manifest.tokens) sim('insert', t.serial)
      await waitFor('all keys back', async () => (await count('[data-testid=key-card]')) === everyKey)
    })

    await step('我的证书 shows the details and chain', async () => {
      await click(`[data-serial="${serial('issued-rsa')}"] [data-testid=view-cert]`)
      await waitFor('the certificate', () => exists('[data-testid=cert-org]'))
      await waitFor('the chain', () => exists('[data-testid=cert-chain]'))
      const org = await text('[data-testid=cert-org]')
      const want = manifest.tokens.find((t) => t.state === 'issued-rsa').organization
      if (want && !org.includes(want)) throw new Error(`organisation missing: ${org}`)
      await shot('certificate')
    })

    await step('修改密码: a weak PIN is held back, a wrong PIN shows tries left, a good one changes', async () => {
      await click('[data-testid=change-pin]')
      await waitFor('the dialog', () => exists('[data-testid=pin-state]'))
      await changePin(USER_PIN, 'weak')
      const disabled = await js('return document.querySelector("[data-testid=pin-submit]").disabled')
      if (!disabled) throw new Error('a weak PIN could be submitted')
      await shot('change-pin-checklist')

      await changePin('Wrong#2026', 'Better#2027pin')
      await click('[data-testid=pin-submit]')
      await waitFor('the wrong-PIN message', () => exists('[data-testid=error][data-code=pin_incorrect]'))
      const msg = await text('[data-testid=error]')
      if (!msg.includes('还可以尝试 9 次')) throw new Error(`wrong PIN message: ${msg}`)
      const fields = await js(
        'return [...document.querySelectorAll("input[type=password]")].map((i) => i.value).join("")',
      )
      if (fields !== '') throw new Error('PIN fields were not cleared')
      await shot('change-pin-wrong')

      await changePin(USER_PIN, 'Better#2027pin')
      await click('[data-testid=pin-submit]')
      await waitFor('the change to be done', () => exists('[data-testid=pin-done]'))
      await shot('change-pin-done', false)
      await click('[data-testid=pin-dialog] button.primary')
    })

    await step('wrong PINs run a key down: count low, final try confirmed, locked → 忘记密码', async () => {
      const key = serial('expired')
      await go(`#/cert/${key}`)
      await waitFor('its certificate', () => exists('[data-testid=change-pin]'))
      await click('[data-testid=change-pin]')
      await waitFor('the dialog', () => exists('[data-testid=pin-state]'))
      for (let i = 1; i <= 9; i++) {
        await changePin(`Wrong#${1000 + i}`, 'Better#2027pin')
        await click('[data-testid=pin-submit]')
        await waitFor(`wrong PIN ${i} answered`, async () =>
          (await exists('[data-testid=error][data-code=pin_incorrect]')) &&
          (await text('[data-testid=pin-state]')).includes(i === 9 ? '最后一次' : `${10 - i}`),
        )
        if (i === 1) await shot('change-pin-count-low', false)
      }
      await waitFor('the final-try warning', () => exists('[data-testid=pin-final]'))
      await changePin('Wrong#1010', 'Better#2027pin')
      const blocked = await js('return document.querySelector("[data-testid=pin-submit]").disabled')
      if (!blocked) throw new Error('the final try was not held back for confirmation')
      await shot('change-pin-final-try')
      await click('[data-testid=confirm-final]')
      await click('[data-testid=pin-submit]')
      await waitFor('the unlock wizard', async () => (await js('return location.hash')).startsWith('#/unlock/'))
      await waitFor('the locked state', async () => (await text('[data-testid=unlock-pin]')).includes('已锁定'))
      await shot('unlock-locked')
      await go('#/')
      await waitFor('the locked key on the home page', async () =>
        (await text(`[data-serial="${key}"] [data-testid=key-pin]`)).includes('已锁定'),
      )
      await shot('home-locked', false)
    })

    await step('the other businesses say plainly they are coming', async () => {
      await go('#/renew')
      await waitFor('the renewal page', () => exists('[data-testid=coming-soon]'))
      await shot('renew')
    })

    await step('设置与关于: language, drivers, version', async () => {
      await go('#/settings')
      await waitFor('the drivers', () => exists('[data-testid=driver]'))
      await shot('settings')
      await click('[data-lang=en]')
      await waitFor('English', async () => (await text('h1')).includes('Settings'))
      await go('#/')
      await waitFor('English home', async () => (await text('h1')).includes('USB keys'))
      await shot('home-en')
      await go('#/settings')
      await click('[data-lang=zh-CN]')
      await waitFor('Chinese again', async () => (await text('h1')).includes('设置'))
    })
  } finally {
    await wd('DELETE', s('')).catch(() => {})
  }
  console.log(`\n${steps.length} steps passed; ${shots.length} screenshots in ${SHOTS}`)
}

main().catch((e) => {
  console.error(`✗ ${e.message}`)
  process.exit(1)
})
