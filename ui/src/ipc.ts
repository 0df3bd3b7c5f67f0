// The one door to the desktop shell: every Tauri command and event the UI uses, typed.
// Components never call `invoke` themselves, so the shapes live in one place and the tests
// can mock the shell with `mockIPC`.

import { invoke } from '@tauri-apps/api/core'
import { listen, type UnlistenFn } from '@tauri-apps/api/event'
import errorCodes from './error-codes.json'

export type Lang = 'zh-CN' | 'zh-TW' | 'en'
export type PinState = 'ok' | 'count_low' | 'final_try' | 'locked'

export interface PinStatus {
  user: PinState
  user_tries_left: number | null
  user_to_be_changed: boolean
  user_initialized: boolean
  so: PinState
  so_tries_left: number | null
}

export interface TokenDescription {
  uri: string
  module: string
  slot_id: number
  label: string
  manufacturer: string
  model: string
  serial: string
  pin: PinStatus
  min_pin_len: number
  max_pin_len: number
  free_public_memory: number | null
  free_private_memory: number | null
  flags: string[]
}

export type KeyAlgorithm =
  | { type: 'rsa'; bits: number }
  | { type: 'ec'; curve: string }
  | { type: 'other'; oid: string }

export type RenewalStatus =
  | { status: 'not_yet'; opens_at: string; opens_in_days: number }
  | { status: 'open'; days_left: number }
  | { status: 'expired' }

export interface CertSummary {
  subject: string
  organization: string | null
  common_name: string | null
  credit_code: string | null
  issuer: string
  issuer_name: string | null
  serial: string
  not_before: string
  not_after: string
  days_left: number
  key: KeyAlgorithm
  is_ca: boolean
  sha256: string
  renewal: RenewalStatus
}

export type NextStep =
  | { action: 'unlock' }
  | { action: 'activate' }
  | { action: 'apply_new' }
  | { action: 'renew'; days_left: number }
  | { action: 'no_certificate' }
  | { action: 'nothing' }

export interface SealSummary {
  name: string
  seal_type: number
  es_id: string
  created: string
  valid_start: string
  valid_end: string
  image_type: string
  image_len: number
}

export type SealState =
  | { state: 'none' }
  | { state: 'present'; summary: SealSummary }
  | { state: 'unreadable'; reason: string }

export interface KeyView {
  token: TokenDescription
  certificate: CertSummary | null
  certificate_error: string | null
  seal: SealState
  next: NextStep
}

export interface CertEntry {
  id: string
  label: string
  role: 'organisation' | 'chain'
  summary: CertSummary
}

export interface CertDetails {
  token: TokenDescription
  certificates: CertEntry[]
}

export interface PinPolicy {
  min_len: number
  max_len: number | null
  require_upper: boolean
  require_lower: boolean
  require_digit: boolean
  require_special: boolean
}

export interface PinInfo {
  serial: string
  status: PinStatus
  policy: PinPolicy
}

export type ModuleSource =
  | { kind: 'explicit' }
  | { kind: 'environment' }
  | { kind: 'profile'; detail: string }
  | { kind: 'p11_kit'; detail: string }

export interface DriverReport {
  path: string
  source: ModuleSource
  loaded: boolean
  error: string | null
  manufacturer: string | null
  description: string | null
  version: string | null
}

export interface Settings {
  language: Lang
}

export interface AppInfo {
  version: string
  log_dir: string
  module_env: string | null
  watching: { module: string; mode: 'slot_events' | 'polling' }[]
}

/** Every error code the shell returns; the Rust side's list is checked against this file. */
export type ErrorCode =
  | 'module_load'
  | 'no_module'
  | 'driver_profile'
  | 'key_removed'
  | 'no_such_key'
  | 'ambiguous_key'
  | 'pin_incorrect'
  | 'pin_locked'
  | 'pin_final_try'
  | 'pin_policy'
  | 'pin_length'
  | 'pin_invalid'
  | 'pin_expired'
  | 'not_logged_in'
  | 'object_not_found'
  | 'unsupported'
  | 'bad_uri'
  | 'pkcs11'
  | 'malformed_data'
  | 'pin_mismatch'
  | 'settings'
  | 'internal'

export const ERROR_CODES: readonly ErrorCode[] = errorCodes as ErrorCode[]

/** What a failed command gives: a code to branch on, a sentence to show. */
export class CommandError extends Error {
  readonly code: ErrorCode
  readonly pin?: PinStatus
  readonly rules: string[]
  readonly detail?: string

  constructor(body: { code: ErrorCode; message: string; pin?: PinStatus; rules?: string[]; detail?: string }) {
    super(body.message)
    this.name = 'CommandError'
    this.code = body.code
    this.pin = body.pin
    this.rules = body.rules ?? []
    this.detail = body.detail
  }
}

/** Turns whatever a rejected invoke gives into a CommandError. */
export function toCommandError(raw: unknown): CommandError {
  if (raw instanceof CommandError) return raw
  if (raw && typeof raw === 'object' && 'code' in raw && 'message' in raw) {
    const body = raw as { code: string; message: string }
    if ((ERROR_CODES as readonly string[]).includes(body.code)) {
      return new CommandError(raw as ConstructorParameters<typeof CommandError>[0])
    }
  }
  return new CommandError({ code: 'internal', message: String(raw) })
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args)
  } catch (raw) {
    throw toCommandError(raw)
  }
}

export const tokenList = () => call<KeyView[]>('token_list')
export const certShow = (serial: string) => call<CertDetails>('cert_show', { serial })
export const pinStatus = (serial: string) => call<PinInfo>('pin_status', { serial })
export const driverList = () => call<DriverReport[]>('driver_list')
export const settingsGet = () => call<Settings>('settings_get')
export const settingsSet = (settings: Settings) => call<Settings>('settings_set', { settings })
export const appInfo = () => call<AppInfo>('app_info')

/**
 * 修改密码. The PINs go straight into the call; the caller clears its fields afterwards and
 * keeps no copy.
 */
export const pinChange = (args: {
  serial: string
  oldPin: string
  newPin: string
  newPinAgain: string
  confirmFinalTry: boolean
}) => call<PinStatus>('pin_change', args)

export const EVENT_INSERTED = 'token://inserted'
export const EVENT_REMOVED = 'token://removed'
export const EVENT_CHANGED = 'token://changed'

export interface KeyEvents {
  inserted: (key: KeyView) => void
  removed: (serial: string) => void
  changed: (key: KeyView) => void
}

/** Subscribes to keys coming, going and changing; returns one function that stops it all. */
export async function onKeyEvents(handlers: KeyEvents): Promise<UnlistenFn> {
  const offs = await Promise.all([
    listen<KeyView>(EVENT_INSERTED, (e) => handlers.inserted(e.payload)),
    listen<{ serial: string }>(EVENT_REMOVED, (e) => handlers.removed(e.payload.serial)),
    listen<KeyView>(EVENT_CHANGED, (e) => handlers.changed(e.payload)),
  ])
  return () => offs.forEach((off) => off())
}
