// The browser bridge as the desktop app hosts it, driven from outside: a real WebSocket
// client (the `ws` package, which lets a test set the Origin header a browser would send)
// speaks to the app's bridge as a page of a given origin would, while WebDriver answers in
// Keyward's own window as the operator does. Run from desktop.e2e.mjs, which owns the
// session and the helpers.
//
// What it proves: an origin's first request brings up the consent prompt in the window, with
// the registrable domain in bold; 允许一次 lasts for the connection, 始终允许 is kept and
// listed in 设置 with when it was granted and last used, and revoking it there makes the next
// request ask again; 拒绝 refuses and cools the origin off without asking again. Each
// private-key operation is confirmed in the window — the website, the key's organisation and
// serial, 登录 or 签名 with the very text for signMessage, the PIN state, the time left — and
// the PIN typed there: the page gets a login token whose signature verifies over the origin
// and the nonce with the key's certificate, or a CMS that openssl verifies and whose content
// is the text shown; a wrong PIN gives the page PIN_INCORRECT and the window the tries left;
// at the final try the PIN is held back until the operator confirms spending it; a locked key
// is refused before anyone is asked, with 忘记密码 offered in the window; cancel, the
// timeout, a page that goes away and a key pulled out each end the prompt and answer the page.
// keyward.open goes to the screen asked for only after the operator agrees; a second launch
// with a keyward:// link hands it to the running app, and a link carrying more is refused.

import { execFileSync, spawn } from 'node:child_process'
import { X509Certificate, createHash, randomBytes, verify } from 'node:crypto'
import { createRequire } from 'node:module'
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// The UI's development packages carry `ws` (see ui/package.json).
const WebSocket = createRequire(new URL('../../ui/package.json', import.meta.url))('ws')

/** A web page of `origin`, connected to the bridge. */
export class Page {
  constructor(url, origin) {
    this.url = url
    this.origin = origin
    this.next = 1
    this.waiting = new Map()
  }

  async open() {
    this.ws = new WebSocket(this.url, { origin: this.origin })
    this.ws.on('message', (data) => {
      const msg = JSON.parse(data.toString())
      const w = this.waiting.get(msg.id)
      if (w) {
        this.waiting.delete(msg.id)
        w(msg)
      }
    })
    this.closed = new Promise((r) => this.ws.once('close', r))
    await new Promise((resolve, reject) => {
      this.ws.once('open', resolve)
      this.ws.once('error', reject)
    })
    return this
  }

  /** Sends a request; resolves with the whole answer ({result} or {error}). */
  call(method, params) {
    const id = this.next++
    const answer = new Promise((resolve) => this.waiting.set(id, resolve))
    const req = { jsonrpc: '2.0', id, method }
    if (params) req.params = params
    this.ws.send(JSON.stringify(req))
    return answer
  }

  async result(method, params) {
    const a = await this.call(method, params)
    if (a.error) throw new Error(`${method}: ${JSON.stringify(a.error)}`)
    return a.result
  }

  close() {
    this.ws.close()
    return this.closed
  }
}

const code = (answer) => answer.error?.data?.code
const nonce = () => randomBytes(32).toString('base64')
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64')

// A Web eID token's signature, checked as a portal does: over hash(origin) ‖ hash(nonce),
// with the public key of the certificate in the token.
function checkToken(token, origin, challenge) {
  const cert = new X509Certificate(Buffer.from(token.unverifiedCertificate, 'base64'))
  const signed = Buffer.concat([
    createHash('sha256').update(origin, 'utf8').digest(),
    createHash('sha256').update(challenge, 'utf8').digest(),
  ])
  const ec = token.algorithm.startsWith('ES')
  const ok = verify(
    'sha256',
    signed,
    ec ? { key: cert.publicKey, dsaEncoding: 'ieee-p1363' } : cert.publicKey,
    Buffer.from(token.signature, 'base64'),
  )
  if (!ok) throw new Error(`the ${token.algorithm} token does not verify over ${origin} and the nonce`)
  // The same signature over another origin must not verify: it is bound to the one shown.
  const other = Buffer.concat([
    createHash('sha256').update('https://evil.example', 'utf8').digest(),
    createHash('sha256').update(challenge, 'utf8').digest(),
  ])
  if (verify('sha256', other, ec ? { key: cert.publicKey, dsaEncoding: 'ieee-p1363' } : cert.publicKey, Buffer.from(token.signature, 'base64'))) {
    throw new Error('the token verifies for another origin too')
  }
  return cert
}

export async function bridgeSteps(h) {
  const { step, waitFor, js, click, text, exists, type, go, sim, shot, serial, USER_PIN } = h
  const URL = h.BRIDGE
  const PORTAL = 'https://www.ggzy-e2e.gov.cn'
  const KEY = serial('with-data')
  const LOCKED = serial('expired')
  const prompt = (kind) => exists(`[data-testid=bridge-prompt][data-kind=${kind}]`)
  const noPrompt = async () => !(await exists('[data-testid=bridge-prompt]'))
  const closeNote = async () => {
    await click('[data-testid=bridge-close]')
    await waitFor('the prompt to go', noPrompt)
  }
  // Answers a confirmation with `pin` in the window; resolves with the outcome shown.
  async function withPin(pin, { confirmFinal = false } = {}) {
    await waitFor('the confirmation', () => prompt('confirm'))
    if (confirmFinal) await click('[data-testid=bridge-confirm-final]')
    await type('[data-testid=bridge-pin]', pin)
    await click('[data-testid=bridge-confirm]')
    await waitFor('the outcome', () => exists('[data-testid=bridge-result]'), 20000)
    return js('return document.querySelector("[data-testid=bridge-result]").dataset.outcome')
  }

  await step('网页调用: the bridge starts with the app; 设置 says it listens', async () => {
    await go('#/settings')
    await waitFor('the bridge listening', () => exists('[data-testid=bridge-status][data-state=listening]'), 20000)
    const status = await text('[data-testid=bridge-status]')
    if (!status.includes(URL.replace('ws://', '').replace(/\/$/, ''))) throw new Error(`设置 says: ${status}`)
    if (!(await exists('[data-testid=bridge-grants-none]'))) throw new Error('grants listed before any was given')
    // keyward.version is answered at once, to any origin, with nothing asked.
    const p = await new Page(URL, 'https://anyone-e2e.example').open()
    const v = await p.result('keyward.version')
    if (!v.version || v.protocol !== 1) throw new Error(`version: ${JSON.stringify(v)}`)
    if (!(await noPrompt())) throw new Error('keyward.version brought up a prompt')
    await p.close()
  })

  let always
  await step('网页调用 consent: 允许一次 for the connection, 始终允许 kept, the domain in bold', async () => {
    await go('#/')
    const once = await new Page(URL, PORTAL).open()
    const listed = once.result('keyward.certificates')
    await waitFor('the consent prompt', () => prompt('consent'))
    const bold = await text('[data-testid=bridge-registrable]')
    if (bold !== 'ggzy-e2e.gov.cn') throw new Error(`the registrable domain shown in bold is ${bold}`)
    const whole = await text('[data-testid=bridge-origin]')
    if (whole.replace(/\s+/g, '') !== PORTAL) throw new Error(`the origin shown is ${whole}`)
    await shot('bridge-consent')
    await click('[data-testid=consent-once]')
    const certs = await listed
    const mine = certs.find((c) => c.key_serial === KEY)
    if (!mine?.organisation) throw new Error(`no certificate of ${KEY}: ${JSON.stringify(certs.map((c) => c.key_serial))}`)
    if (certs.some((c) => 'pin' in c && c.pin && 'value' in c.pin)) throw new Error('a PIN value in keyward.certificates')
    await waitFor('the prompt to go', noPrompt)
    // The same connection asks nothing more.
    await once.result('keyward.certificates')
    if (!(await noPrompt())) throw new Error('允许一次 asked again on the same connection')
    await once.close()
    // A new connection is asked again: 始终允许 this time.
    always = await new Page(URL, PORTAL).open()
    const again = always.result('keyward.certificates')
    await waitFor('consent asked again for a new connection', () => prompt('consent'))
    await click('[data-testid=consent-always]')
    await again
    await always.close()
    always = await new Page(URL, PORTAL).open()
    await always.result('keyward.certificates')
    if (!(await noPrompt())) throw new Error('始终允许 was not kept')
  })

  await step('网页调用 登录: confirmed in the window with the PIN; a wrong PIN shows tries left', async () => {
    let challenge = nonce()
    let asked = always.call('keyward.authenticate', { nonce: challenge, key_serial: KEY })
    await waitFor('the confirmation', () => prompt('confirm'))
    const key = await text('[data-testid=bridge-key]')
    if (!key.includes(KEY)) throw new Error(`the key shown: ${key}`)
    const org = manifest(h, 'with-data').organization
    if (org && !key.includes(org)) throw new Error(`the organisation is not shown: ${key}`)
    if ((await js('return document.querySelector("[data-testid=bridge-action]").dataset.action')) !== 'login') {
      throw new Error('the action shown is not 登录')
    }
    const countdown = await text('[data-testid=bridge-countdown]')
    if (!/0:[0-3]\d/.test(countdown) || !countdown.includes('30 秒')) throw new Error(`the time left: ${countdown}`)
    await shot('bridge-confirm-login')
    if ((await withPin('Wrong#2101')) !== 'pin_incorrect') throw new Error('a wrong PIN was not reported')
    const said = await text('[data-testid=bridge-result]')
    if (!said.includes('9')) throw new Error(`the window does not say 9 tries are left: ${said}`)
    await shot('bridge-wrong-pin')
    const wrong = await asked
    if (code(wrong) !== 'PIN_INCORRECT' || wrong.error.data.tries_left !== 9) throw new Error(`the page got ${JSON.stringify(wrong)}`)
    await closeNote()
    // Again, with the right PIN: the state shown says a try was spent.
    challenge = nonce()
    asked = always.call('keyward.authenticate', { nonce: challenge, key_serial: KEY })
    await waitFor('the confirmation', () => prompt('confirm'))
    if ((await js('return document.querySelector("[data-testid=bridge-pin-state]").dataset.state')) !== 'count_low') {
      throw new Error('the PIN state after a wrong PIN is not shown')
    }
    if ((await withPin(USER_PIN)) !== 'done') throw new Error(`the login did not complete: ${await text('[data-testid=bridge-result]')}`)
    const token = (await asked).result
    if (token?.format !== 'web-eid:1.0') throw new Error(`the page got ${JSON.stringify(token)}`)
    const cert = checkToken(token, PORTAL, challenge)
    console.log(`  ${token.algorithm} token verifies over ${PORTAL} and the nonce with ${cert.subject.split('\n').find((l) => l.startsWith('O='))}`)
    await closeNote()
  })

  await step('网页调用 签名: signMessage shows the very text; the CMS verifies with openssl', async () => {
    const words = '本单位同意按招标文件（编号 GZ-2026-0042）的要求投标，\n投标总价：人民币 1,280,000.00 元。'
    const asked = always.call('keyward.signMessage', { key_serial: KEY, data: b64(words) })
    await waitFor('the confirmation', () => prompt('confirm'))
    const shown = await js('return document.querySelector("[data-testid=bridge-text]").textContent')
    if (shown !== words) throw new Error(`the text shown differs: ${JSON.stringify(shown)}`)
    await shot('bridge-confirm-sign')
    if ((await withPin(USER_PIN)) !== 'done') throw new Error('the signature did not complete')
    const cms = Buffer.from((await asked).result.cms, 'base64')
    const dir = mkdtempSync(join(tmpdir(), 'keyward-e2e-cms-'))
    writeFileSync(join(dir, 'sig.der'), cms)
    try {
      const content = execFileSync('openssl', ['cms', '-verify', '-inform', 'DER', '-in', join(dir, 'sig.der'), '-noverify'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }).toString('utf8')
      if (content !== words) throw new Error(`openssl found other content: ${JSON.stringify(content)}`)
      console.log('  openssl cms -verify: the signature holds over the text shown')
    } catch (e) {
      if (e.code === 'ENOENT') console.log('  (openssl missing: CMS not checked)')
      else throw e
    }
    await closeNote()
  })

  await step('网页调用: cancel, the timeout, a page gone and a key pulled out each end the prompt', async () => {
    let asked = always.call('keyward.authenticate', { nonce: nonce(), key_serial: KEY })
    await waitFor('the confirmation', () => prompt('confirm'))
    await type('[data-testid=bridge-pin]', 'Wrong#2102')
    await click('[data-testid=bridge-cancel]')
    if (code(await asked) !== 'USER_CANCELLED') throw new Error('cancel did not reach the page')
    await waitFor('the prompt to go', noPrompt)

    asked = always.call('keyward.signData', { key_serial: KEY, data: b64('超时测试') })
    await waitFor('the confirmation', () => prompt('confirm'))
    const t0 = Date.now()
    const timedOut = await asked
    if (code(timedOut) !== 'USER_TIMEOUT') throw new Error(`the page got ${JSON.stringify(timedOut)}`)
    console.log(`  USER_TIMEOUT after ${Date.now() - t0} ms of the 30 s`)
    await waitFor('the timeout note', () => exists('[data-testid=bridge-ended][data-reason=timeout]'))
    await shot('bridge-timeout', false)
    await closeNote()

    const leaving = await new Page(URL, PORTAL).open()
    leaving.call('keyward.authenticate', { nonce: nonce(), key_serial: KEY })
    await waitFor('the confirmation', () => prompt('confirm'))
    await leaving.close()
    await waitFor('the withdrawn note', () => exists('[data-testid=bridge-ended][data-reason=withdrawn]'))
    await closeNote()

    asked = always.call('keyward.authenticate', { nonce: nonce(), key_serial: KEY })
    await waitFor('the confirmation', () => prompt('confirm'))
    sim('remove', KEY)
    const removed = await asked
    if (code(removed) !== 'KEY_REMOVED') throw new Error(`the page got ${JSON.stringify(removed)}`)
    await waitFor('the key-removed note', () => exists('[data-testid=bridge-ended][data-reason=key_removed]'))
    await closeNote()
    sim('insert', KEY)
    await waitFor('the key back', () => exists(`[data-serial="${KEY}"]`))
  })

  await step('网页调用: the final try is held back until confirmed; a locked key offers 忘记密码', async () => {
    // Wrong PINs through the bridge down to the final try (a right one reset the count).
    for (let i = 1; i <= 9; i++) {
      const asked = always.call('keyward.authenticate', { nonce: nonce(), key_serial: KEY })
      if ((await withPin(`Wrong#${2110 + i}`)) !== 'pin_incorrect') throw new Error(`wrong PIN ${i} not reported`)
      const a = await asked
      if (a.error.data.tries_left !== 10 - i) throw new Error(`after ${i} wrong PINs the page got ${JSON.stringify(a.error)}`)
      await closeNote()
    }
    const asked = always.call('keyward.authenticate', { nonce: nonce(), key_serial: KEY })
    await waitFor('the final-try warning', () => exists('[data-testid=bridge-final]'))
    await type('[data-testid=bridge-pin]', USER_PIN)
    if (!(await js('return document.querySelector("[data-testid=bridge-confirm]").disabled'))) {
      throw new Error('the final try could be spent without confirming')
    }
    if (!(await exists('[data-testid=bridge-final] [data-testid=bridge-forgot]'))) throw new Error('no 忘记密码 at the final try')
    await shot('bridge-final-try')
    await click('[data-testid=bridge-confirm-final]')
    await click('[data-testid=bridge-confirm]')
    await waitFor('the outcome', () => exists('[data-testid=bridge-result][data-outcome=done]'), 20000)
    if (!(await asked).result) throw new Error('the confirmed final try did not log in')
    await closeNote()

    // The key run down to a lock earlier in this run: refused before anyone is asked.
    const locked = await always.call('keyward.authenticate', { nonce: nonce(), key_serial: LOCKED })
    if (code(locked) !== 'PIN_LOCKED') throw new Error(`the page got ${JSON.stringify(locked)}`)
    await waitFor('the locked notice', () => prompt('locked'))
    await shot('bridge-locked')
    await click('[data-testid=bridge-forgot]')
    await waitFor('the unlock wizard', async () => (await js('return location.hash')).startsWith(`#/unlock/${LOCKED}`))
    await waitFor('the prompt to go', noPrompt)
  })

  await step('网页调用 keyward.open: the screen opens only after the operator agrees', async () => {
    await go('#/')
    let asked = always.call('keyward.open', { screen: 'renew', key_serial: KEY })
    await waitFor('the open prompt', () => prompt('open'))
    await shot('bridge-open', false)
    await click('[data-testid=bridge-open-no]')
    if (code(await asked) !== 'NOT_SUPPORTED') throw new Error('a declined open was not refused')
    if ((await js('return location.hash')) !== '#/') throw new Error('declined, yet the screen changed')
    asked = always.call('keyward.open', { screen: 'renew', key_serial: KEY })
    await waitFor('the open prompt', () => prompt('open'))
    await click('[data-testid=bridge-open]')
    if (!(await asked).result) throw new Error('keyward.open was not answered')
    await waitFor('证书续期 for the key', async () => (await js('return location.hash')) === `#/renew?serial=${KEY}`)
  })

  await step('网页调用 拒绝: refused and cooled off; 始终允许 revoked in 设置 is asked again', async () => {
    const evil = await new Page(URL, 'https://ggzy-e2e.gov.cn.evil-e2e.example.com').open()
    let asked = evil.call('keyward.certificates')
    await waitFor('the consent prompt', () => prompt('consent'))
    const bold = await text('[data-testid=bridge-registrable]')
    if (bold !== 'example.com') throw new Error(`a look-alike shows ${bold} in bold`)
    await shot('bridge-consent-lookalike', false)
    await click('[data-testid=consent-deny]')
    if (code(await asked) !== 'ORIGIN_NOT_ALLOWED') throw new Error('a denied origin was answered')
    const cooled = await evil.call('keyward.certificates')
    if (code(cooled) !== 'ORIGIN_NOT_ALLOWED' || !(cooled.error.data.retry_after_seconds > 0)) {
      throw new Error(`no cooling-off: ${JSON.stringify(cooled)}`)
    }
    if (!(await noPrompt())) throw new Error('a denied origin was asked again at once')
    const refused = await evil.call('keyward.authenticate', { nonce: nonce(), key_serial: KEY })
    if (code(refused) !== 'ORIGIN_NOT_ALLOWED') throw new Error('a denied origin reached the key')
    await evil.close()

    await go('#/settings')
    await waitFor('the grant listed', () => exists(`[data-testid=bridge-grant][data-origin="${PORTAL}"]`))
    const row = await text(`[data-testid=bridge-grant][data-origin="${PORTAL}"]`)
    if (!row.includes('允许时间') || !row.includes('最近使用')) throw new Error(`the grant row: ${row}`)
    if (await exists('[data-testid=bridge-grant][data-origin="https://ggzy-e2e.gov.cn.evil-e2e.example.com"]')) {
      throw new Error('a denied origin is listed as allowed')
    }
    await js('document.querySelector("[data-testid=bridge-settings]").scrollIntoView({ block: "center" })')
    await shot('settings-bridge')
    await click(`[data-testid=bridge-grant][data-origin="${PORTAL}"] [data-testid=bridge-revoke]`)
    await waitFor('the grant gone', () => exists('[data-testid=bridge-grants-none]'))
    // The grants file no longer holds it either.
    const file = join(h.APP_DIR, 'bridge-grants.json')
    if (readFileSync(file, 'utf8').includes(PORTAL)) throw new Error('the revoked grant is still in the file')
    await always.close()
    const back = await new Page(URL, PORTAL).open()
    asked = back.call('keyward.certificates')
    await waitFor('consent asked again', () => prompt('consent'))
    await click('[data-testid=consent-once]')
    await asked
    await back.close()
  })

  await step('网页调用 keyward:// link: a second launch hands it over; a link with more is refused', async () => {
    await go('#/settings')
    const launch = (link) =>
      new Promise((resolve, reject) => {
        const child = spawn(h.APP, [link], {
          stdio: 'ignore',
          env: {
            ...process.env,
            DISPLAY: h.DISPLAY,
            KEYWARD_DESKTOP_DIR: h.APP_DIR,
            KEYWARD_LANG: 'zh-CN',
            NO_AT_BRIDGE: '1',
            // Were the handover to fail, this copy would find the bridge's port taken.
            KEYWARD_BRIDGE_LISTEN: URL.replace('ws://', '').replace(/\/$/, ''),
          },
        })
        const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error('the second launch did not exit'))), 20000)
        child.once('exit', (code) => (clearTimeout(timer), resolve(code)))
      })
    const t0 = Date.now()
    await launch(`keyward://open?screen=seal&key=${KEY}`)
    console.log(`  second launch handed its link over and exited in ${Date.now() - t0} ms`)
    await waitFor('电子印章 for the key', async () => (await js('return location.hash')) === `#/seal?serial=${KEY}`)
    await go('#/settings')
    for (const link of [
      `keyward://open?screen=renew&key=${KEY}&pin=123456`,
      `https://open?screen=renew&key=${KEY}`,
      `keyward://open?screen=renew&key=${'A'.repeat(65)}`,
    ]) {
      await launch(link)
      await new Promise((r) => setTimeout(r, 800))
      const at = await js('return location.hash')
      if (at !== '#/settings') throw new Error(`${link} moved the window to ${at}`)
    }
    // Each was handed over, and refused by the running copy, which says so in its log.
    const refusals = () => {
      const dir = join(h.APP_DIR, 'logs')
      return readdirSync(dir)
        .map((f) => readFileSync(join(dir, f), 'utf8'))
        .join('\n')
        .split('keyward:// link refused').length - 1
    }
    await waitFor('three refusals in the log', () => refusals() >= 3)
  })
}

function manifest(h, state) {
  return h.manifest.tokens.find((t) => t.state === state)
}
