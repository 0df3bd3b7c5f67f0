import { afterEach, describe, expect, it, vi } from 'vitest'

import { KeywardBridge } from '../src/client.js'
import { KeywardError } from '../src/errors.js'
import { BRIDGE_ERROR_CODES, ERROR_TEXT, LOCALES, LNA_PROMPT, SDK_ERROR_CODES } from '../src/messages.js'
import { page, rpcError, VERSION, type Handler } from './fake.js'

const answering: Handler = (method) => (method === 'keyward.version' ? VERSION : { result: {} })

function bridge(p: ReturnType<typeof page>, extra: Partial<ConstructorParameters<typeof KeywardBridge>[0]> = {}) {
  return new KeywardBridge({ socket: p.factory, environment: p.env, ...extra })
}

async function failure(promise: Promise<unknown>): Promise<KeywardError> {
  try {
    await promise
  } catch (e) {
    expect(e).toBeInstanceOf(KeywardError)
    return e as KeywardError
  }
  throw new Error('expected a failure')
}

afterEach(() => {
  vi.useRealTimers()
})

describe('connecting', () => {
  it('refuses a connection no click asked for, before any socket is opened', async () => {
    const p = page(answering)
    p.activation.isActive = false
    const e = await failure(bridge(p).connect())
    expect(e.code).toBe('NEEDS_USER_GESTURE')
    expect(e.message).toContain('点击')
    expect(p.sockets).toHaveLength(0)
  })

  it('refuses a page that is not https', async () => {
    const p = page(answering)
    p.env.protocol = 'http:'
    p.env.isSecureContext = false
    const e = await failure(bridge(p).connect())
    expect(e.code).toBe('INSECURE_ORIGIN')
    expect(p.sockets).toHaveLength(0)
  })

  it('connects to the loopback bridge and reads its version', async () => {
    const p = page(answering)
    const b = bridge(p)
    expect(await b.connect()).toEqual({ version: '0.1.0', protocol: 1 })
    expect(b.connected).toBe(true)
    expect(p.sockets[0]?.url).toBe('ws://127.0.0.1:28231/')
    // A second connect() reuses the connection.
    await b.connect()
    expect(p.sockets).toHaveLength(1)
  })

  it('says what the browser is about to ask before the first connection', async () => {
    const p = page(answering, 'prompt')
    const seen: { text: string; socketsBefore: number }[] = []
    const b = bridge(p, {
      onLocalNetworkPrompt: (a) => seen.push({ text: a.text, socketsBefore: p.sockets.length }),
    })
    const advice = await b.localNetworkAccess()
    expect(advice.state).toBe('prompt')
    expect(advice.permission).toBe('loopback-network')
    expect(advice.title).toBe(LNA_PROMPT.title['zh-CN'])
    expect(advice.text).toContain('允许')
    expect(advice.text).toContain('密码只在 Keyward 中输入')
    await b.connect()
    expect(seen).toEqual([{ text: advice.text, socketsBefore: 0 }])
  })

  it('tells a refusal by the browser from Keyward not running', async () => {
    const p = page(answering, 'prompt')
    p.opens = false
    const b = bridge(p)
    // The browser asks, the operator refuses: the permission reads denied afterwards.
    const denied = failure(b.connect())
    p.permission.state = 'denied'
    const e = await denied
    expect(e.code).toBe('LOCAL_NETWORK_DENIED')
    expect(e.message).toContain('网站设置')
    expect(e.message).toContain('刷新本页面')
    expect(e.messageIn('en')).toContain('Site settings')
    // Nothing listening, the browser content: Keyward is not running.
    p.permission.state = 'granted'
    const e2 = await failure(b.connect())
    expect(e2.code).toBe('BRIDGE_UNREACHABLE')
    expect(e2.message).toContain('打开 Keyward')
  })

  it('falls back to the older permission name, and to unknown where neither exists', async () => {
    const p = page(answering)
    p.env.permissions = {
      query: async ({ name }) => {
        if (name === 'local-network-access') return { state: 'denied' }
        throw new TypeError('unknown')
      },
    }
    const a = await bridge(p).localNetworkAccess()
    expect(a).toMatchObject({ state: 'denied', permission: 'local-network-access' })
    expect(a.text).toBe(ERROR_TEXT.LOCAL_NETWORK_DENIED['zh-CN'])
    p.env.permissions = undefined
    const u = await bridge(p).localNetworkAccess()
    expect(u.state).toBe('unknown')
    expect(u.title).toBeNull()
  })

  it('calls before connect() are NOT_CONNECTED, and a dropped bridge fails what waits', async () => {
    const p = page((m) => (m === 'keyward.version' ? VERSION : undefined))
    const b = bridge(p)
    expect((await failure(b.certificates())).code).toBe('NOT_CONNECTED')
    await b.connect()
    const waiting = failure(b.certificates())
    p.sockets[0]!.drop()
    expect((await waiting).code).toBe('CONNECTION_LOST')
    expect(b.connected).toBe(false)
  })

  it('a call with no answer ends in TIMEOUT', async () => {
    const p = page((m) => (m === 'keyward.version' ? VERSION : undefined))
    const b = bridge(p, { timeoutMs: 50 })
    await b.connect()
    expect((await failure(b.signMessage({ keySerial: 'K1', data: 'x' }))).code).toBe('TIMEOUT')
  })
})

describe('methods', () => {
  const CERT = 'MIIB'
  const handler: Handler = (method, params) => {
    switch (method) {
      case 'keyward.version':
        return VERSION
      case 'keyward.certificates':
        return {
          result: [
            {
              key_serial: 'K1',
              certificate: CERT,
              organisation: '广州市示例科技有限公司',
              uscc: '91440101MA5D000018',
              not_after: '2027-12-01T00:00:00Z',
              pin: { state: 'count_low', tries_left: 9 },
            },
            { key_serial: 'K2', certificate: CERT, organisation: null, uscc: null, not_after: '', pin: null },
          ],
        }
      case 'keyward.authenticate':
        return {
          result: {
            unverifiedCertificate: CERT,
            algorithm: 'ES256',
            signature: 'c2ln',
            format: 'web-eid:1.0',
            appVersion: 'urn:keyward:bridge:0.1.0',
          },
        }
      case 'keyward.sign':
      case 'keyward.signData':
        return { result: { signature: 'c2ln', algorithm: { cryptoAlgorithm: 'ECC', hashFunction: params.hash_function ?? 'SHA-256', paddingScheme: 'NONE' } } }
      case 'keyward.signMessage':
        return { result: { cms: 'Y21z' } }
      case 'keyward.open':
        return { result: {} }
      default:
        return rpcError('METHOD_NOT_FOUND')
    }
  }

  it('every bridge method is a typed call with its parameters as the bridge names them', async () => {
    const p = page(handler)
    const b = bridge(p)
    await b.connect()
    const certs = await b.certificates()
    expect(certs[0]).toEqual({
      keySerial: 'K1',
      certificate: CERT,
      organisation: '广州市示例科技有限公司',
      uscc: '91440101MA5D000018',
      notAfter: '2027-12-01T00:00:00Z',
      pin: { state: 'count_low', triesLeft: 9 },
    })
    expect(certs[1]?.pin).toBeNull()
    const token = await b.authenticate({ nonce: 'n'.repeat(44), keySerial: 'K1', purpose: 'bind' })
    expect(token.format).toBe('web-eid:1.0')
    await b.sign({ keySerial: 'K1', hash: new Uint8Array(32).fill(1), hashFunction: 'SHA-256' })
    await b.signData({ keySerial: 'K1', data: '投标' })
    const cms = await b.signMessage({ keySerial: 'K1', data: '报价：壹佰万元整', detached: true })
    expect(cms).toBe('Y21z')
    await b.open({ screen: 'renew', keySerial: 'K1' })
    const sent = p.sockets[0]!.sent.map(({ method, params }) => ({ method, params }))
    expect(sent).toEqual([
      { method: 'keyward.version', params: {} },
      { method: 'keyward.certificates', params: {} },
      { method: 'keyward.authenticate', params: { nonce: 'n'.repeat(44), key_serial: 'K1', purpose: 'bind' } },
      { method: 'keyward.sign', params: { key_serial: 'K1', hash: btoa(String.fromCharCode(...new Uint8Array(32).fill(1))), hash_function: 'SHA-256' } },
      { method: 'keyward.signData', params: { key_serial: 'K1', data: '5oqV5qCH' } },
      { method: 'keyward.signMessage', params: { key_serial: 'K1', data: '5oql5Lu377ya5aO55L2w5LiH5YWD5pW0', detached: true } },
      { method: 'keyward.open', params: { screen: 'renew', key_serial: 'K1' } },
    ])
    // Every request is JSON-RPC 2.0 with a fresh numeric id.
    const ids = p.sockets[0]!.sent.map((r) => r.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(p.sockets[0]!.raw.every((r) => JSON.parse(r).jsonrpc === '2.0')).toBe(true)
  })

  it('an answer of the wrong shape is BAD_ANSWER, never a value', async () => {
    const p = page((m) => (m === 'keyward.version' ? VERSION : { result: { nothing: true } }))
    const b = bridge(p)
    await b.connect()
    expect((await failure(b.certificates())).code).toBe('BAD_ANSWER')
    expect((await failure(b.authenticate({ nonce: 'x'.repeat(44) }))).code).toBe('BAD_ANSWER')
    expect((await failure(b.signMessage({ keySerial: 'K', data: 'x' }))).code).toBe('BAD_ANSWER')
  })
})

describe('errors', () => {
  it('every bridge code arrives as a KeywardError with its stable code and a sentence in each language', async () => {
    for (const code of BRIDGE_ERROR_CODES) {
      const p = page((m) => (m === 'keyward.version' ? VERSION : rpcError(code)))
      const b = bridge(p)
      await b.connect()
      const e = await failure(b.certificates())
      expect(e.code).toBe(code)
      expect(e.rpcCode).toBe(-32000)
      expect(e.detail).toBe(`bridge says ${code}`)
      expect(e.message).toMatch(/[\u4e00-\u9fff]/)
      for (const l of LOCALES) expect(e.messageIn(l).length).toBeGreaterThan(5)
    }
  })

  it('every message exists in zh-CN, zh-TW and English, Chinese first', () => {
    for (const code of [...BRIDGE_ERROR_CODES, ...SDK_ERROR_CODES]) {
      const t = ERROR_TEXT[code]
      expect(Object.keys(t)[0]).toBe('zh-CN')
      expect(t['zh-CN']).toMatch(/[\u4e00-\u9fff]/)
      expect(t['zh-TW']).toMatch(/[\u4e00-\u9fff]/)
      expect(t.en).toMatch(/^[\x20-\x7e’“”‘—…]+$/)
    }
  })

  it('a wrong PIN says the tries left, the final try says so, a cooling-off says how long', async () => {
    const answers = [
      rpcError('PIN_INCORRECT', { tries_left: 7, final_try: false }),
      rpcError('PIN_INCORRECT', { tries_left: 1, final_try: true }),
      rpcError('PIN_INCORRECT', { tries_left: null, final_try: false }),
      rpcError('ORIGIN_NOT_ALLOWED', { retry_after_seconds: 30 }),
      { error: { code: -32000, message: 'x', data: { code: 'SOMETHING_NEW' } } },
    ]
    const p = page((m) => (m === 'keyward.version' ? VERSION : answers.shift()))
    const b = bridge(p)
    await b.connect()
    const e1 = await failure(b.certificates())
    expect(e1.message).toContain('还可以尝试 7 次')
    expect(e1.data.tries_left).toBe(7)
    expect((await failure(b.certificates())).message).toContain('只剩最后一次机会')
    expect((await failure(b.certificates())).message).toBe('USB Key 密码错误。连续输错 10 次会锁定证书。')
    expect((await failure(b.certificates())).message).toContain('30 秒后')
    const unknown = await failure(b.certificates())
    expect(unknown.code).toBe('BAD_ANSWER')
  })

  it('English when the portal asks for it', async () => {
    const p = page((m) => (m === 'keyward.version' ? VERSION : rpcError('PIN_LOCKED')))
    const b = bridge(p, { locale: 'en' })
    await b.connect()
    expect((await failure(b.certificates())).message).toContain('Forgot PIN')
  })
})
