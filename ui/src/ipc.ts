// The one door to the desktop shell: every Tauri command and event the UI uses, typed.
// Components never call `invoke` themselves, so the shapes live in one place and the tests
// can mock the shell with `mockIPC`.

import { Channel, invoke } from '@tauri-apps/api/core'
import { listen, type UnlistenFn } from '@tauri-apps/api/event'
import errorCodes from './error-codes.json'
import flowCodes from './flow-codes.json'

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
  | { action: 'install_certificate' }
  | { action: 'apply_new' }
  | { action: 'install_seal' }
  | { action: 'pay_renewal' }
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

/** What the CA holds for the operator, most urgent first. */
export type WaitingKind = 'finish_unlock' | 'install_certificate' | 'install_seal' | 'pay_renewal'

/** Where a key stands at the CA: only the CA knows a fresh key waits for activation. */
export interface Standing {
  state: 'awaiting_activation' | 'active'
  /** `business_id` is null for what the CA's public read says (it names no business). */
  waiting: { kind: WaitingKind; business_id: string | null }[]
}

export interface KeyView {
  token: TokenDescription
  certificate: CertSummary | null
  certificate_error: string | null
  seal: SealState
  /** Null until the CA has answered (or with no CA set). */
  standing: Standing | null
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
  /** The CA online service's address. */
  ca_url?: string | null
  /** The CA root certificate (PEM file) pinned for TLS: Keyward's own copy once pinned here. */
  ca_root?: string | null
  /** The file the pinned copy was made from (set by the shell). */
  ca_root_origin?: string | null
}

/** A root certificate file: the pinned one, or one about to be confirmed. */
export interface RootInfo {
  path: string
  subject: string
  issuer: string
  /** SHA-256 of the DER, `AB:CD:…` as `openssl x509 -fingerprint -sha256` prints it. */
  sha256: string
  not_before: string
  not_after: string
  is_ca: boolean
  copied_from: string | null
  from_env: boolean
}

export type Step =
  | 'reading_key'
  | 'contacting_ca'
  | 'setting_pin'
  | 'generating_key'
  | 'signing_request'
  | 'issuing'
  | 'writing'
  | 'verifying'
  | 'retiring_old'
  | 'confirming'

/** One step of a slow workflow, sent through the command's channel. */
export interface Progress {
  step: Step
  index: number
  total: number
}

export interface BusinessEvent {
  at: string
  state: string
  note: string
}

export interface Business {
  id: string
  kind: string
  state: string
  key_serial: string | null
  uscc: string
  fee_fen: number
  created_at: string
  updated_at: string
  timeline: BusinessEvent[]
}

/** Where an SMS code went: the masked phone and the 编号 printed beside the code. */
export interface CodeNotice {
  phone_masked: string
  reference: string
  expires_at: string
  resend_after: string
}

/** Another requester's open unlock, as the CA names it (masked). */
export interface OpenBusinessNotice {
  kind: string
  requester_masked: string
  phone_masked: string
  opened_at: string
}

export interface RenewState {
  certificate: CertSummary
  pending: ({ business_id: string; old_id: string; step: string } & Record<string, unknown>) | null
  business: Business | null
  fee_per_year_fen: number
}

export interface PaymentRequest {
  payment_id: string
  business_id: string
  amount_fen: number
  status: 'pending' | 'paid' | 'failed'
  pay_url: string
}

export interface SealShown extends SealSummary {
  kind: 'official' | 'contract' | null
  mime_type: string | null
  verified: boolean
  image_url: string | null
}

export type FlowKind = 'activate' | 'unlock' | 'renew' | 'seal'

export interface KeyProgress {
  businesses: Business[]
  resumable: FlowKind[]
}

/** A page of the document to stamp, in millimetres. */
export interface PageView {
  width_mm: number
  height_mm: number
}

/** What the 签章 page draws before the PIN: the pages and the key's seal. */
export interface StampView {
  pages: PageView[]
  signatures: number
  seal_name: string
  seal_width_mm: number
  seal_height_mm: number
  seal_image_url: string
  organization: string | null
  /** `<name>-已盖章.pdf` beside the original, not yet taken. */
  suggested_output: string
}

/** Where the seal goes: its centre on one page, or 骑缝章 across every page's right edge. */
export type StampPlace =
  | { kind: 'at'; page: number; x_mm: number; y_mm: number }
  | { kind: 'cross_page'; y_mm: number | null }

export interface StampedFile {
  field: string
  pages: number[]
  bytes: number
  output: string
}

export interface SealCheck {
  name: string
  es_id: string
  made_under_root: boolean
  bound_to_signer: boolean
  picture_matches: boolean
}

export interface SignatureReport {
  field: string
  pages: number[]
  organization: string | null
  credit_code: string | null
  signer: string | null
  signed_at: string | null
  intact: boolean
  unchanged_since: boolean
  chain_trusted: boolean
  seal: SealCheck | null
  valid: boolean
  problems: string[]
}

export interface StampReport {
  signatures: SignatureReport[]
  all_valid: boolean
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
  | (typeof flowCodes)[number]

export const ERROR_CODES: readonly ErrorCode[] = [...errorCodes, ...flowCodes] as ErrorCode[]

/** What a failed command gives: a code to branch on, a sentence to show. */
export class CommandError extends Error {
  readonly code: ErrorCode
  readonly pin?: PinStatus
  readonly rules: string[]
  readonly detail?: string
  /** For `unlock_by_other`: the unlock in the way. */
  readonly open_business?: OpenBusinessNotice

  constructor(body: {
    code: ErrorCode
    message: string
    pin?: PinStatus
    rules?: string[]
    detail?: string
    open_business?: OpenBusinessNotice
  }) {
    super(body.message)
    this.name = 'CommandError'
    this.code = body.code
    this.pin = body.pin
    this.rules = body.rules ?? []
    this.detail = body.detail
    this.open_business = body.open_business
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

/** The header carrying a file command's other arguments (percent-encoded JSON). */
export const ARGS_HEADER = 'keyward-args'

/** A file command: the bytes go as the raw body (not a JSON array of numbers four times
 *  their size), the other arguments in {@link ARGS_HEADER}. */
async function callFile<T>(command: string, bytes: Uint8Array, args: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, bytes, { headers: { [ARGS_HEADER]: encodeURIComponent(JSON.stringify(args)) } })
  } catch (raw) {
    throw toCommandError(raw)
  }
}

export const tokenList = () => call<KeyView[]>('token_list')
export const certShow = (serial: string) => call<CertDetails>('cert_show', { serial })
/** 导出证书: PEM (text) or DER (binary). */
export type CertFormat = 'pem' | 'der'
/** Where 导出证书 would write: a free name in the Documents folder. */
export const certExportPath = (serial: string, format: CertFormat) => call<string>('cert_export_path', { serial, format })
/** 导出证书 to the new file `path` (never over an existing file); no PIN. */
export const certExport = (args: { serial: string; format: CertFormat; path: string }) =>
  call<{ path: string; bytes: number }>('cert_export', args)
export const pinStatus = (serial: string) => call<PinInfo>('pin_status', { serial })
export const driverList = () => call<DriverReport[]>('driver_list')
export const settingsGet = () => call<Settings>('settings_get')
/**
 * Saves the settings. A CA root other than the pinned one is pinned only with `rootSha256`,
 * the fingerprint the operator confirmed after {@link caRootInspect}; the shell reads the file
 * again and refuses it if it differs.
 */
export const settingsSet = (settings: Settings, rootSha256?: string) =>
  call<Settings>('settings_set', rootSha256 ? { settings, rootSha256 } : { settings })
/** What a root file holds (subject, fingerprint), for the confirmation. Changes nothing. */
export const caRootInspect = (path: string) => call<RootInfo>('ca_root_inspect', { path })
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

export const caRootShow = () => call<RootInfo | null>('ca_root_show')

/** A channel for a slow command's steps. */
function steps(onProgress?: (p: Progress) => void): Channel<Progress> {
  const ch = new Channel<Progress>()
  ch.onmessage = (p) => onProgress?.(p)
  return ch
}

/** 激活证书, first: the CA sends a code to the handler; its ticket stays in the shell. */
export const activateSendCode = (serial: string) => call<CodeNotice>('activate_send_code', { serial })
/** 激活证书: the SMS code and the new PIN twice; the caller empties its fields afterwards. */
export const activate = (
  args: { serial: string; code: string; newPin: string; newPinAgain: string },
  onProgress?: (p: Progress) => void,
) => call<unknown>('activate', { ...args, progress: steps(onProgress) })

export const unlockApply = (args: { serial: string; name: string; idNumber: string; phone: string }) =>
  call<Business>('unlock_apply', args)
export const unlockAttach = ({ bytes, ...args }: { serial: string; kind: string; bytes: Uint8Array }) =>
  callFile<unknown>('unlock_attach', bytes, args)
export const unlockSubmit = (serial: string) => call<Business>('unlock_submit', { serial })
export const unlockStatus = (serial: string) => call<Business>('unlock_status', { serial })
/** A (new) unlock code to the requester's phone, once approved. */
export const unlockSendCode = (serial: string) => call<CodeNotice>('unlock_send_code', { serial })
export const unlockFinish = (
  args: { serial: string; code: string; newPin: string; newPinAgain: string },
  onProgress?: (p: Progress) => void,
) => call<Business>('unlock_finish', { ...args, progress: steps(onProgress) })

export const renewStatus = (serial: string) => call<RenewState>('renew_status', { serial })
export const renewApply = (args: {
  serial: string
  years: number
  invoiceTitle: string
  taxId: string
  email: string
  pin: string
  confirmFinalTry: boolean
}) => call<Business>('renew_apply', args)
export const renewPay = (serial: string) => call<PaymentRequest>('renew_pay', { serial })
/** 安装证书, with its steps through the channel. */
export const renewInstall = (
  args: { serial: string; pin: string; confirmFinalTry: boolean },
  onProgress?: (p: Progress) => void,
) => call<CertSummary>('renew_install', { ...args, progress: steps(onProgress) })

export const sealApply = ({
  scan,
  ...args
}: {
  serial: string
  name: string
  kind: 'official' | 'contract'
  change: boolean
  scan: Uint8Array
  pin: string
  confirmFinalTry: boolean
}) => callFile<Business>('seal_apply', scan, args)
export const sealStatus = (serial: string) => call<Business | null>('seal_status', { serial })
export const sealInstall = (
  args: { serial: string; pin: string; confirmFinalTry: boolean },
  onProgress?: (p: Progress) => void,
) => call<SealShown>('seal_install', { ...args, progress: steps(onProgress) })
export const sealShow = (serial: string) => call<SealShown>('seal_show', { serial })
/** 下载电子印章申请表: saved in the download folder; answers where. */
export const sealFormDownload = (serial: string) => call<string>('seal_form_download', { serial })
/** 办理进度查询: the CA shows a key's businesses to the key alone, so this signs with the PIN;
 *  the caller empties its field afterwards. */
export const progressList = (args: { serial: string; pin: string; confirmFinalTry: boolean }) =>
  call<KeyProgress>('progress_list', args)
export const flowPending = (serial: string) => call<FlowKind[]>('flow_pending', { serial })

/** 签章: the document at `path` (read by the shell) and the key's seal; no PIN. */
export const stampPreview = (serial: string, path: string) => call<StampView>('stamp_preview', { serial, path })
/** 盖章 into the new file `output`; the caller empties its PIN field afterwards. */
export const stampFile = (
  args: { serial: string; path: string; output: string; place: StampPlace; pin: string; confirmFinalTry: boolean },
  onProgress?: (p: Progress) => void,
) => call<StampedFile>('stamp_file', { ...args, progress: steps(onProgress) })
/** Every signature of the document at `path`, against the pinned CA root. */
export const stampVerify = (path: string) => call<StampReport>('stamp_verify', { path })

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

// The browser bridge: what pages ask, answered in this window. The PIN goes in one call,
// `bridgeConfirm`, and the caller empties its field afterwards; no event ever carries it.

/** An origin as the operator reads it: the registrable domain is the part to emphasise. */
export interface OriginShown {
  origin: string
  scheme: string
  prefix: string
  registrable: string
  port: number | null
}

export interface KeyShown {
  serial: string
  organisation: string
  credit_code: string | null
}

export type BridgeAction =
  | { kind: 'login' }
  | { kind: 'bind' }
  | { kind: 'sign_digest'; hash: 'SHA-256' | 'SHA-384' | 'SHA-512'; digest_hex: string }
  | { kind: 'sign_message'; text: string | null; bytes: number; sha256_hex: string }

export type Screen = 'renew' | 'seal' | 'unlock' | 'activate' | 'home' | 'pin'

interface PromptBase {
  id: number
  origin: OriginShown
  /** Milliseconds left to answer when the shell sent it; null for a notice. */
  expires_in_ms: number | null
  timeout_seconds: number
}

export type Prompt = PromptBase &
  (
    | { kind: 'consent' }
    | { kind: 'confirm'; key: KeyShown; action: BridgeAction; pin: PinStatus }
    | { kind: 'open'; screen: Screen; key: KeyShown | null }
    | { kind: 'locked'; key: KeyShown }
  )

export type Reply = 'once' | 'always' | 'deny' | 'cancel' | 'open' | 'dismiss'

export type Outcome =
  | { outcome: 'done' }
  | { outcome: 'pin_incorrect'; pin: PinStatus }
  | { outcome: 'pin_locked' }
  | { outcome: 'final_try_unconfirmed' }
  | { outcome: 'key_removed' }
  | { outcome: 'failed'; code: string }

export type EndedReason = 'timeout' | 'withdrawn' | 'key_removed' | 'closed'

export type BridgeStatus =
  | { state: 'starting' }
  | { state: 'listening'; url: string }
  | { state: 'other_keyward'; addr: string; version: string }
  | { state: 'port_busy'; addr: string; reason: string }
  | { state: 'failed'; reason: string }
  | { state: 'stopped' }

export interface GrantView {
  origin: OriginShown
  granted_at: string
  last_used: string
}

export interface BridgeInfo {
  status: BridgeStatus
  grants: GrantView[]
}

export interface Navigate {
  screen: Screen
  key: string | null
}

export const bridgeStatus = () => call<BridgeInfo>('bridge_status')
export const bridgeRevoke = (origin: string) => call<BridgeInfo>('bridge_revoke', { origin })
/** Opens a portal already allowed here (始终允许) in the browser, for its 绑定. */
export const portalOpen = (origin: string) => call<null>('portal_open', { origin })
export const bridgePrompts = () => call<Prompt[]>('bridge_prompts')
export const bridgeAnswer = (id: number, reply: Reply) => call<null>('bridge_answer', { id, reply })
/** The operator's confirmation with the PIN; resolves with how the operation ended on the key. */
export const bridgeConfirm = (args: { id: number; pin: string; confirmFinalTry: boolean }) =>
  call<Outcome>('bridge_confirm', args)
export const navigationTake = () => call<Navigate | null>('navigation_take')

export const EVENT_PROMPTS = 'bridge://prompts'
export const EVENT_ENDED = 'bridge://ended'
export const EVENT_STATUS = 'bridge://status'
export const EVENT_NAVIGATE = 'app://navigate'

export interface BridgeEvents {
  prompts: (list: Prompt[]) => void
  ended: (id: number, reason: EndedReason) => void
  navigate: () => void
  status?: (s: BridgeStatus) => void
}

export async function onBridgeEvents(h: BridgeEvents): Promise<UnlistenFn> {
  const offs = await Promise.all([
    listen<Prompt[]>(EVENT_PROMPTS, (e) => h.prompts(e.payload)),
    listen<{ id: number; reason: EndedReason }>(EVENT_ENDED, (e) => h.ended(e.payload.id, e.payload.reason)),
    listen(EVENT_NAVIGATE, () => h.navigate()),
    listen<BridgeStatus>(EVENT_STATUS, (e) => h.status?.(e.payload)),
  ])
  return () => offs.forEach((off) => off())
}

// ── Support: the CA's contacts, 环境检测 and the support bundle ──────────────────────────

/** The CA's name and support contacts, in its own words. */
export interface CaProfile {
  display_name: string
  hotline: string
  online: string
  office_hours: string
  website: string
  /** How to apply for a new certificate (新申请). */
  new_application: string
  /** How to replace a lost or broken key (补办). */
  replacement: string
}

export interface Contacts {
  profile: CaProfile
  /** When it was fetched from the CA (RFC 3339). */
  fetched_at: string
  ca_url: string
  /** False: the copy kept from the last fetch, the CA not answering now. */
  fresh: boolean
}

export type Severity = 'problem' | 'warning' | 'ok' | 'info'

export interface Finding {
  code: string
  severity: Severity
  message: string
  fix: string | null
  detail: Record<string, unknown>
}

export interface UsbDevice {
  name: string
  id: string
  manufacturer: string | null
  product: string | null
  ccid: boolean
  node: string | null
}

export interface DoctorReport {
  healthy: boolean
  verdict: string
  findings: Finding[]
  arch: string
  version: string
  usb_keys: { device: UsbDevice; profile: string }[]
  usb_devices: UsbDevice[]
  pcsc: { running: boolean; socket: string }
  modules: { path: string; arch: string | null; profile: string | null; probe: unknown }[]
}

export interface BundleWritten {
  path: string
  folder: string
  bytes: number
  files: string[]
}

/** The CA's contacts: fetched now, or the copy kept from the last fetch; null when neither. */
export const caProfile = () => call<Contacts | null>('ca_profile')
/** 环境检测: the verdict in one sentence and every finding. */
/** 环境检测. `withCa` false leaves the CA out (the empty state's re-checks). */
export const doctorReport = (withCa = true) => call<DoctorReport>('doctor_report', { withCa })
/** 生成诊断包: written into the Downloads folder; where it is comes back. */
export const supportBundle = () => call<BundleWritten>('support_bundle')
