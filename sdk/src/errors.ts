// One error type for everything a call can end in: the bridge's stable codes and the SDK's
// own, each with the sentence the operator reads.

import {
  BRIDGE_ERROR_CODES,
  ERROR_TEXT,
  ORIGIN_COOLING_OFF,
  PIN_INCORRECT_FINAL,
  PIN_INCORRECT_UNCOUNTED,
  say,
  type BridgeErrorCode,
  type ErrorCode,
  type Locale,
} from './messages.js'

/** Details the bridge adds to some errors. */
export interface ErrorData {
  /** PIN_INCORRECT: tries left, when the key says. */
  tries_left?: number | null
  /** PIN_INCORRECT: the next wrong PIN locks the key. */
  final_try?: boolean
  /** ORIGIN_NOT_ALLOWED while the refusal cools off. */
  retry_after_seconds?: number
  [key: string]: unknown
}

/** A failed call: `code` is stable, `message` is for the operator, `detail` for developers. */
export class KeywardError extends Error {
  override readonly name = 'KeywardError'
  readonly code: ErrorCode
  /** The bridge's or the SDK's own sentence, in English, for the portal's developer. */
  readonly detail: string
  /** The JSON-RPC error code, when the bridge answered. */
  readonly rpcCode: number | undefined
  readonly data: ErrorData
  private readonly locale: Locale

  constructor(
    code: ErrorCode,
    options: { detail?: string; rpcCode?: number; data?: ErrorData; locale?: Locale } = {},
  ) {
    const locale = options.locale ?? 'zh-CN'
    const data = options.data ?? {}
    super(userMessage(code, data, locale))
    this.code = code
    this.detail = options.detail ?? code
    this.rpcCode = options.rpcCode
    this.data = data
    this.locale = locale
  }

  /** The operator's sentence in another language. */
  messageIn(locale: Locale): string {
    return userMessage(this.code, this.data, locale)
  }

  /** The language `message` is in. */
  get messageLocale(): Locale {
    return this.locale
  }
}

function userMessage(code: ErrorCode, data: ErrorData, locale: Locale): string {
  if (code === 'PIN_INCORRECT') {
    if (data.final_try === true) return say(PIN_INCORRECT_FINAL, locale)
    if (typeof data.tries_left === 'number') return say(ERROR_TEXT.PIN_INCORRECT, locale, data.tries_left)
    return say(PIN_INCORRECT_UNCOUNTED, locale)
  }
  if (code === 'ORIGIN_NOT_ALLOWED' && typeof data.retry_after_seconds === 'number') {
    return say(ORIGIN_COOLING_OFF, locale, data.retry_after_seconds)
  }
  return say(ERROR_TEXT[code], locale)
}

/** The error of a JSON-RPC error object from the bridge. Unknown codes are BAD_ANSWER. */
export function fromRpcError(error: unknown, locale: Locale): KeywardError {
  if (typeof error !== 'object' || error === null) {
    return new KeywardError('BAD_ANSWER', { detail: 'an error answer without an error object', locale })
  }
  const e = error as { code?: unknown; message?: unknown; data?: unknown }
  const data = (typeof e.data === 'object' && e.data !== null ? e.data : {}) as ErrorData & {
    code?: unknown
  }
  const code = data.code
  const detail = typeof e.message === 'string' ? e.message : ''
  const rpcCode = typeof e.code === 'number' ? e.code : undefined
  const { code: _stable, ...rest } = data
  if (typeof code === 'string' && (BRIDGE_ERROR_CODES as readonly string[]).includes(code)) {
    return new KeywardError(code as BridgeErrorCode, { detail, rpcCode, data: rest, locale })
  }
  return new KeywardError('BAD_ANSWER', {
    detail: `unknown error code ${String(code)}: ${detail}`,
    rpcCode,
    data: rest,
    locale,
  })
}
