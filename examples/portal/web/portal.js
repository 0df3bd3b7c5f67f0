// The sample portal's page: the supplier's account, 绑定, 登录 with the key, a signed bid and
// 证书续期, through Keyward's portal SDK (served at /sdk/). The PIN is never asked for here:
// Keyward asks for it in its own window.

import { KeywardBridge, KeywardError, createSof } from '/sdk/index.js'

const $ = (id) => document.getElementById(id)
const bridgeUrl = document.querySelector('meta[name="keyward-bridge"]').content
const bridge = new KeywardBridge({ url: bridgeUrl, onLocalNetworkPrompt: showAdvice })
const sof = createSof(bridge)
// For the console and for tests: the page's bridge and its SOF layer.
window.keywardPortal = { bridge, sof }

let certs = []
let me = null

function say(text, code = '', rule = '') {
  const m = $('message')
  m.textContent = text
  m.dataset.code = code
  m.dataset.rule = rule
}

function fail(e) {
  if (e instanceof KeywardError) say(e.message, e.code)
  else say(e?.message ?? String(e), e?.code ?? 'error', e?.rule ?? '')
}

function showAdvice(a) {
  const box = $('lna-notice')
  box.dataset.state = a.state
  if (a.state === 'granted') {
    box.hidden = true
    return
  }
  $('lna-title').textContent = a.title ?? ''
  $('lna-text').textContent = a.text
  box.hidden = false
}

async function api(path, body) {
  const r = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  })
  const j = await r.json().catch(() => ({}))
  if (!r.ok) {
    const e = new Error(j.message ?? `HTTP ${r.status}`)
    e.code = j.code
    e.rule = j.rule ?? ''
    throw e
  }
  return j
}

function renderCerts() {
  const list = $('certs')
  // The key the supplier chose stays chosen when the list is read again.
  const was = document.querySelector('input[name="cert"]:checked')?.value
  const keep = certs.some((c) => c.keySerial === was)
  list.replaceChildren()
  certs.forEach((c, i) => {
    const li = document.createElement('li')
    li.dataset.serial = c.keySerial
    const input = document.createElement('input')
    input.type = 'radio'
    input.name = 'cert'
    input.value = c.keySerial
    input.checked = keep ? c.keySerial === was : i === 0
    const label = document.createElement('label')
    label.append(input, ` ${c.organisation ?? '（未知单位）'} · ${c.uscc ?? ''} · 有效期至 ${c.notAfter.slice(0, 10)} · USB Key ${c.keySerial}`)
    li.append(label)
    list.append(li)
  })
}

/** The key to use: the bound one when the account has one, else the one chosen. */
function chosenKey() {
  const bound = me?.binding?.certificate
  if (bound) {
    const c = certs.find((x) => x.certificate === bound)
    if (!c) throw Object.assign(new Error('没有找到本账户绑定的 USB Key：请插入绑定的 USB Key 后点击“连接 Keyward”。'), { code: 'bound_key_missing' })
    return c.keySerial
  }
  const checked = document.querySelector('input[name="cert"]:checked')
  if (checked) return checked.value
  throw Object.assign(new Error('没有找到 USB Key：请插入 USB Key 后点击“连接 Keyward”。'), { code: 'no_key' })
}

/** Connects from the click being handled (call it first, before any await). */
function ready() {
  const status = $('bridge-status')
  // "Connected" again only once the list of keys is read afresh.
  status.dataset.connected = 'false'
  return bridge.connect().then(async (v) => {
    // Connected: whatever the browser asked was answered.
    $('lna-notice').hidden = true
    certs = await bridge.certificates()
    renderCerts()
    status.textContent = `已连接 Keyward ${v.version}`
    status.dataset.connected = 'true'
  }, (e) => {
    status.textContent = '未连接'
    throw e
  })
}

async function refreshMe() {
  try {
    me = await api('/api/me')
  } catch {
    me = null
  }
  $('anonymous').hidden = me !== null
  $('account-area').hidden = me === null
  if (me) {
    $('me').textContent = me.account
    const b = me.binding
    const box = $('binding')
    box.replaceChildren()
    const p = document.createElement('p')
    if (b) {
      p.id = 'binding-info'
      p.dataset.serial = b.serial
      p.textContent = `已绑定证书：${b.organisation ?? ''}（统一社会信用代码 ${b.credit_code ?? '-'}），序列号 ${b.serial}，颁发者 ${b.issuer}`
    } else {
      p.id = 'binding-none'
      p.textContent = '此账户尚未绑定证书。'
    }
    box.append(p)
    $('bind').hidden = Boolean(b)
  }
}

function on(id, event, handler) {
  $(id).addEventListener(event, (ev) => {
    if (event === 'submit') ev.preventDefault()
    say('')
    handler().catch(fail)
  })
}

on('connect', 'click', async () => {
  await ready()
})

on('register', 'click', async () => {
  await api('/api/accounts', { account: $('account').value, password: $('password').value })
  say('账户已注册，请用账户和密码登录。', 'registered')
})

on('password-form', 'submit', async () => {
  await api('/api/login/password', { account: $('account').value, password: $('password').value })
  $('password').value = ''
  await refreshMe()
  say('已用账户密码登录。', 'logged_in')
})

on('login-key', 'click', async () => {
  const connected = ready()
  const { nonce } = await api('/api/challenge', {})
  await connected
  const token = await bridge.authenticate({ nonce, keySerial: chosenKey(), purpose: 'login' })
  await api('/api/login/key', { token })
  await refreshMe()
  say('已用证书登录。', 'logged_in_with_key')
})

on('bind', 'click', async () => {
  const connected = ready()
  const { nonce } = await api('/api/challenge', {})
  await connected
  const token = await bridge.authenticate({ nonce, keySerial: chosenKey(), purpose: 'bind' })
  await api('/api/bind', { token })
  await refreshMe()
  say('证书已绑定到此账户。', 'bound')
})

on('logout', 'click', async () => {
  await api('/api/logout', {})
  await refreshMe()
  say('已退出登录。', 'logged_out')
})

on('bid-form', 'submit', async () => {
  const connected = ready()
  const draft = await api('/api/bids/draft', { project: $('project').value, amount: $('amount').value })
  $('bid-text').textContent = draft.text
  await connected
  const cms = await bridge.signMessage({ keySerial: chosenKey(), data: draft.text })
  const { bid } = await api('/api/bids', { draft: draft.draft, cms })
  const r = $('bid-result')
  r.textContent = `投标已提交：项目 ${bid.project}，报价 ${bid.amount} 元，签名已由平台验证（证书序列号 ${bid.signer_serial}）。`
  r.dataset.accepted = 'true'
})

on('renew', 'click', async () => {
  await ready()
  await bridge.open({ screen: 'renew', keySerial: chosenKey() })
  say('已在 Keyward 中打开“证书续期”，请在 Keyward 窗口中继续。', 'renew_opened')
})

bridge.localNetworkAccess().then(showAdvice, () => {})
refreshMe()
