// A bridge that answers from a script, behind the SDK's socket interface, and a page
// environment the tests set.

import { readFileSync } from 'node:fs'

import type { Environment, SocketLike } from '../src/client.js'

export type Handler = (method: string, params: Record<string, unknown>) => { result?: unknown; error?: unknown } | undefined

export class FakeSocket implements SocketLike {
  readyState = 0
  onopen: ((ev: unknown) => void) | null = null
  onclose: ((ev: { code: number; reason: string }) => void) | null = null
  onerror: ((ev: unknown) => void) | null = null
  onmessage: ((ev: { data: unknown }) => void) | null = null
  sent: { id: number; method: string; params: Record<string, unknown> }[] = []
  raw: string[] = []

  constructor(
    readonly url: string,
    private readonly handler: Handler,
    willOpen: boolean,
  ) {
    setTimeout(() => {
      if (willOpen) {
        this.readyState = 1
        this.onopen?.({})
      } else {
        this.readyState = 3
        this.onerror?.({})
        this.onclose?.({ code: 1006, reason: '' })
      }
    }, 0)
  }

  send(data: string): void {
    this.raw.push(data)
    const req = JSON.parse(data) as { id: number; method: string; params: Record<string, unknown> }
    this.sent.push(req)
    const answer = this.handler(req.method, req.params)
    if (answer === undefined) return
    setTimeout(() => this.onmessage?.({ data: JSON.stringify({ jsonrpc: '2.0', id: req.id, ...answer }) }), 0)
  }

  close(): void {
    if (this.readyState === 3) return
    this.readyState = 3
    setTimeout(() => this.onclose?.({ code: 1000, reason: '' }), 0)
  }

  /** The bridge goes away. */
  drop(): void {
    this.readyState = 3
    this.onclose?.({ code: 1006, reason: '' })
  }
}

export function rpcError(code: string, extra: Record<string, unknown> = {}, message = `bridge says ${code}`) {
  return { error: { code: -32000, message, data: { code, ...extra } } }
}

export interface Page {
  env: Environment
  permission: { state: string }
  activation: { isActive: boolean }
  sockets: FakeSocket[]
  factory: (url: string) => FakeSocket
  opens: boolean
}

/** A page on https with a click being handled, the browser's permission at `state`. */
export function page(handler: Handler, state = 'granted'): Page {
  const p: Page = {
    permission: { state },
    activation: { isActive: true },
    sockets: [],
    opens: true,
    env: {},
    factory: (url) => {
      const s = new FakeSocket(url, handler, p.opens)
      p.sockets.push(s)
      return s
    },
  }
  p.env = {
    permissions: {
      query: async ({ name }) => {
        if (name !== 'loopback-network') throw new TypeError(`unknown permission ${name}`)
        return { state: p.permission.state }
      },
    },
    userActivation: p.activation,
    isSecureContext: true,
    protocol: 'https:',
    hostname: 'portal.test',
    randomBytes: (n) => new Uint8Array(n).map((_, i) => (i * 37 + 11) & 0xff),
  }
  return p
}

export const VERSION = { result: { version: '0.1.0', protocol: 1 } }

/** A certificate made by OpenSSL (tests/fixtures/leaf.pem, under ca.pem), not by Keyward: base64 DER. */
export function pemBody(file: string): string {
  return readFileSync(new URL(`./fixtures/${file}`, import.meta.url), 'utf8')
    .replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')
    .replace(/\s+/g, '')
}
