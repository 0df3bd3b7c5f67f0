// The connection to Keyward's browser bridge: a WebSocket to this computer's loopback
// address speaking JSON-RPC 2.0, opened only from a user's click, with one typed method per
// bridge method. Who the page is comes from the browser's handshake (its Origin), never from
// anything sent here.

import { bytesOf, fromBase64, toBase64 } from './base64.js'
import { KeywardError, fromRpcError } from './errors.js'
import { advice, localNetworkState, type LocalNetworkAdvice, type PermissionsLike } from './lna.js'
import type { Locale } from './messages.js'

/** Where the bridge listens unless told otherwise. */
export const DEFAULT_URL = 'ws://127.0.0.1:28231/'

/** How long a call waits for its answer: the bridge gives the operator 2 minutes. */
export const DEFAULT_TIMEOUT_MS = 150_000

/** How long opening the connection may take. */
export const CONNECT_TIMEOUT_MS = 10_000

/** The part of the browser's WebSocket the SDK uses. */
export interface SocketLike {
  readonly readyState: number
  onopen: ((ev: unknown) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  send(data: string): void
  close(code?: number, reason?: string): void
}

export type SocketFactory = (url: string) => SocketLike

/** What the SDK reads of the page it runs in (the browser's own by default; tests pass theirs). */
export interface Environment {
  permissions?: PermissionsLike
  userActivation?: { readonly isActive: boolean }
  isSecureContext?: boolean
  protocol?: string
  hostname?: string
  randomBytes?: (n: number) => Uint8Array
}

export interface BridgeOptions {
  /** The bridge's address (default `ws://127.0.0.1:28231/`). */
  url?: string
  /** The language of `KeywardError.message` and the advice (default zh-CN). */
  locale?: Locale
  /** How long a call waits for its answer, in milliseconds. */
  timeoutMs?: number
  /** Called just before the first connection when the browser is about to ask about Local Network Access. */
  onLocalNetworkPrompt?: (advice: LocalNetworkAdvice) => void
  /** For tests: how sockets are made. */
  socket?: SocketFactory
  /** For tests: the page's environment. */
  environment?: Environment
}

export interface VersionInfo {
  version: string
  protocol: number
}

export type PinState = 'ok' | 'count_low' | 'final_try' | 'locked'

export interface KeyCertificate {
  /** The key's serial: what every other call names the key by. */
  keySerial: string
  /** The organisation certificate, base64 DER. */
  certificate: string
  organisation: string | null
  /** 统一社会信用代码. */
  uscc: string | null
  /** RFC 3339, UTC. */
  notAfter: string
  /** The PIN's state as the key reports it (null when it could not be read). */
  pin: { state: PinState; triesLeft: number | null } | null
}

/** A Web eID `web-eid:1.0` authentication token: send it to the portal's server as it is. */
export interface WebEidAuthToken {
  unverifiedCertificate: string
  algorithm: string
  signature: string
  format: string
  appVersion: string
}

export type HashFunction = 'SHA-256' | 'SHA-384' | 'SHA-512'

export interface DigestSignature {
  /** base64; RSA PKCS#1 v1.5, or ECDSA as `r‖s`. */
  signature: string
  algorithm: { cryptoAlgorithm: 'RSA' | 'ECC'; hashFunction: HashFunction; paddingScheme: string }
}

export type Screen = 'renew' | 'seal' | 'unlock' | 'activate' | 'home' | 'pin'

const OPEN = 1

interface Pending {
  resolve: (v: unknown) => void
  reject: (e: KeywardError) => void
  timer: ReturnType<typeof setTimeout>
}

function browserEnvironment(): Environment {
  const g = globalThis as unknown as {
    navigator?: { permissions?: PermissionsLike; userActivation?: { isActive: boolean } }
    isSecureContext?: boolean
    location?: { protocol: string; hostname: string }
    crypto?: { getRandomValues(a: Uint8Array): Uint8Array }
  }
  return {
    permissions: g.navigator?.permissions,
    userActivation: g.navigator?.userActivation,
    isSecureContext: g.isSecureContext,
    protocol: g.location?.protocol,
    hostname: g.location?.hostname,
    randomBytes: (n) => {
      const a = new Uint8Array(n)
      if (!g.crypto) throw new Error('no crypto.getRandomValues')
      return g.crypto.getRandomValues(a)
    },
  }
}

function browserSocket(url: string): SocketLike {
  const WS = (globalThis as unknown as { WebSocket?: new (u: string) => SocketLike }).WebSocket
  if (!WS) throw new Error('no WebSocket in this environment')
  return new WS(url)
}

/** The bridge, from a page. */
export class KeywardBridge {
  readonly url: string
  readonly locale: Locale
  private readonly timeoutMs: number
  private readonly env: Environment
  private readonly makeSocket: SocketFactory
  private readonly onPrompt: ((a: LocalNetworkAdvice) => void) | undefined
  private socket: SocketLike | null = null
  private nextId = 1
  private pending = new Map<number, Pending>()
  private connecting: Promise<VersionInfo> | null = null

  constructor(options: BridgeOptions = {}) {
    this.url = options.url ?? DEFAULT_URL
    this.locale = options.locale ?? 'zh-CN'
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.env = options.environment ?? browserEnvironment()
    this.makeSocket = options.socket ?? browserSocket
    this.onPrompt = options.onLocalNetworkPrompt
  }

  /**
   * What the browser will do about reaching this computer, and the text to show before the
   * first connection: `prompt` means the browser is going to ask (say what it means, and to
   * choose Allow); `denied` means it will refuse (say how to allow it).
   */
  async localNetworkAccess(): Promise<LocalNetworkAdvice> {
    const { state, permission } = await localNetworkState(this.env.permissions)
    return advice(state, permission, this.locale)
  }

  get connected(): boolean {
    return this.socket !== null && this.socket.readyState === OPEN
  }

  /**
   * Connects. Call it from a click handler (the page's user gesture): the browser may ask
   * about Local Network Access now, and a connection nobody asked for is refused with
   * NEEDS_USER_GESTURE. Resolves with Keyward's version.
   */
  connect(): Promise<VersionInfo> {
    if (this.connected) return this.version()
    if (this.connecting) return this.connecting
    // Checked before anything is awaited: the gesture is the click being handled now.
    const activation = this.env.userActivation
    if (activation && !activation.isActive) {
      return Promise.reject(this.error('NEEDS_USER_GESTURE', 'connect() was not called from a user gesture'))
    }
    const secure = this.env.isSecureContext !== false && (this.env.protocol ?? 'https:') === 'https:'
    if (!secure) {
      return Promise.reject(this.error('INSECURE_ORIGIN', 'the bridge serves https origins only'))
    }
    this.connecting = this.openSocket().finally(() => {
      this.connecting = null
    })
    return this.connecting
  }

  private async openSocket(): Promise<VersionInfo> {
    const before = await this.localNetworkAccess()
    if (before.state === 'prompt') this.onPrompt?.(before)
    let socket: SocketLike
    try {
      socket = this.makeSocket(this.url)
    } catch (e) {
      throw this.error('BRIDGE_UNREACHABLE', `cannot open ${this.url}: ${String(e)}`)
    }
    const opened = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), CONNECT_TIMEOUT_MS)
      socket.onopen = () => {
        clearTimeout(timer)
        resolve(true)
      }
      socket.onerror = () => {
        clearTimeout(timer)
        resolve(false)
      }
      socket.onclose = () => {
        clearTimeout(timer)
        resolve(false)
      }
    })
    if (!opened) {
      try {
        socket.close()
      } catch {
        // Already closed.
      }
      // A refusal by the browser reads as a failed connection: the permission tells them apart.
      const after = await this.localNetworkAccess()
      if (after.state === 'denied') {
        throw this.error('LOCAL_NETWORK_DENIED', `the browser refused ${after.permission ?? 'local network access'}`)
      }
      throw this.error('BRIDGE_UNREACHABLE', `no bridge answered at ${this.url}`)
    }
    this.socket = socket
    socket.onmessage = (ev) => this.receive(ev.data)
    socket.onclose = (ev) => this.lost(`closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`)
    socket.onerror = () => {}
    return this.version()
  }

  /** Closes the connection; calls still waiting end in CONNECTION_LOST. */
  close(): void {
    const s = this.socket
    this.socket = null
    if (s) s.close(1000, 'closed by the page')
    this.failAll('CONNECTION_LOST', 'closed by the page')
  }

  private lost(why: string): void {
    this.socket = null
    this.failAll('CONNECTION_LOST', why)
  }

  private failAll(code: 'CONNECTION_LOST', why: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      p.reject(this.error(code, why))
      this.pending.delete(id)
    }
  }

  private receive(data: unknown): void {
    let msg: { id?: unknown; result?: unknown; error?: unknown }
    try {
      msg = JSON.parse(String(data)) as typeof msg
    } catch {
      return
    }
    if (typeof msg.id !== 'number') return
    const p = this.pending.get(msg.id)
    if (!p) return
    this.pending.delete(msg.id)
    clearTimeout(p.timer)
    if (msg.error !== undefined) p.reject(fromRpcError(msg.error, this.locale))
    else p.resolve(msg.result)
  }

  /** Sends one request; its result, or its error as a KeywardError. */
  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const socket = this.socket
    if (!socket || socket.readyState !== OPEN) {
      return Promise.reject(this.error('NOT_CONNECTED', `${method} before connect()`))
    }
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(this.error('TIMEOUT', `${method} had no answer in ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }))
    })
  }

  private error(code: ConstructorParameters<typeof KeywardError>[0], detail: string): KeywardError {
    return new KeywardError(code, { detail, locale: this.locale })
  }

  private bad(method: string, what: string): KeywardError {
    return this.error('BAD_ANSWER', `${method}: ${what}`)
  }

  /** `keyward.version`: Keyward's version and the protocol's. */
  async version(): Promise<VersionInfo> {
    const r = (await this.call('keyward.version')) as Partial<VersionInfo> | null
    if (!r || typeof r.version !== 'string' || typeof r.protocol !== 'number') {
      throw this.bad('keyward.version', 'no version')
    }
    return { version: r.version, protocol: r.protocol }
  }

  /** `keyward.certificates`: the keys plugged in that hold an organisation certificate. */
  async certificates(): Promise<KeyCertificate[]> {
    const r = await this.call('keyward.certificates')
    if (!Array.isArray(r)) throw this.bad('keyward.certificates', 'not a list')
    return r.map((e: Record<string, unknown>) => {
      if (typeof e.key_serial !== 'string' || typeof e.certificate !== 'string') {
        throw this.bad('keyward.certificates', 'an entry without key_serial or certificate')
      }
      const pin = e.pin as { state?: unknown; tries_left?: unknown } | null | undefined
      return {
        keySerial: e.key_serial,
        certificate: e.certificate,
        organisation: typeof e.organisation === 'string' ? e.organisation : null,
        uscc: typeof e.uscc === 'string' ? e.uscc : null,
        notAfter: typeof e.not_after === 'string' ? e.not_after : '',
        pin:
          pin && typeof pin.state === 'string'
            ? {
                state: pin.state as PinState,
                triesLeft: typeof pin.tries_left === 'number' ? pin.tries_left : null,
              }
            : null,
      }
    })
  }

  /**
   * `keyward.authenticate`: a Web eID token over the portal's `nonce` (from its server) for
   * this page's origin. `purpose` only changes what the operator is shown: 登录 or 绑定.
   */
  async authenticate(p: {
    nonce: string
    keySerial?: string
    purpose?: 'login' | 'bind'
  }): Promise<WebEidAuthToken> {
    const params: Record<string, unknown> = { nonce: p.nonce }
    if (p.keySerial !== undefined) params.key_serial = p.keySerial
    if (p.purpose !== undefined) params.purpose = p.purpose
    const r = (await this.call('keyward.authenticate', params)) as Partial<WebEidAuthToken> | null
    if (!r || typeof r.signature !== 'string' || typeof r.unverifiedCertificate !== 'string') {
      throw this.bad('keyward.authenticate', 'no token')
    }
    return r as WebEidAuthToken
  }

  /**
   * `keyward.sign`: signs a digest made by the page. The operator can only be shown the
   * digest: prefer `signData` or `signMessage`, whose content the operator reads.
   */
  async sign(p: { keySerial: string; hash: Uint8Array; hashFunction: HashFunction }): Promise<DigestSignature> {
    const r = await this.call('keyward.sign', {
      key_serial: p.keySerial,
      hash: toBase64(p.hash),
      hash_function: p.hashFunction,
    })
    return this.signature('keyward.sign', r)
  }

  /**
   * `keyward.signData`: a signature over `data` (text is signed as UTF-8), which the operator
   * reads in Keyward before signing; RSA PKCS#1 v1.5 or ECDSA `r‖s`.
   */
  async signData(p: {
    keySerial: string
    data: Uint8Array | string
    hashFunction?: HashFunction
  }): Promise<DigestSignature> {
    const params: Record<string, unknown> = { key_serial: p.keySerial, data: toBase64(bytesOf(p.data)) }
    if (p.hashFunction !== undefined) params.hash_function = p.hashFunction
    return this.signature('keyward.signData', await this.call('keyward.signData', params))
  }

  private signature(method: string, r: unknown): DigestSignature {
    const s = r as Partial<DigestSignature> | null
    if (!s || typeof s.signature !== 'string' || typeof s.algorithm !== 'object') {
      throw this.bad(method, 'no signature')
    }
    return s as DigestSignature
  }

  /**
   * `keyward.signMessage`: CMS SignedData over `data` (text is signed as UTF-8), read by the
   * operator first. base64 DER; `detached` leaves the content out.
   */
  async signMessage(p: { keySerial: string; data: Uint8Array | string; detached?: boolean }): Promise<string> {
    const r = (await this.call('keyward.signMessage', {
      key_serial: p.keySerial,
      data: toBase64(bytesOf(p.data)),
      detached: p.detached ?? false,
    })) as { cms?: unknown } | null
    if (!r || typeof r.cms !== 'string') throw this.bad('keyward.signMessage', 'no cms')
    return r.cms
  }

  /** `keyward.open`: asks Keyward to bring a screen forward (证书续期, 修改密码, …) for a key. */
  async open(p: { screen: Screen; keySerial?: string }): Promise<void> {
    const params: Record<string, unknown> = { screen: p.screen }
    if (p.keySerial !== undefined) params.key_serial = p.keySerial
    await this.call('keyward.open', params)
  }

  /** Random bytes from the browser's generator. */
  randomBytes(n: number): Uint8Array {
    const f = this.env.randomBytes
    if (!f) throw this.error('INTERNAL_ERROR', 'no random generator')
    return f(n)
  }
}

export { fromBase64, toBase64 }
