// Sample shell answers for the tests, shaped like the Rust side serialises them.
import type { CertDetails, KeyView, PinInfo, PinStatus } from '../src/ipc'

export function pin(user: PinStatus['user'] = 'ok', tries: number | null = 10): PinStatus {
  return {
    user,
    user_tries_left: tries,
    user_to_be_changed: false,
    user_initialized: true,
    so: 'ok',
    so_tries_left: 10,
  }
}

export function key(serial: string, over: Partial<KeyView> = {}): KeyView {
  return {
    token: {
      uri: `pkcs11:serial=${serial}`,
      module: '/usr/lib/libkeyward_sim.so',
      slot_id: 1,
      label: `kw-${serial}`,
      manufacturer: 'Keyward',
      model: 'Sim',
      serial,
      pin: pin(),
      min_pin_len: 4,
      max_pin_len: 255,
      free_public_memory: null,
      free_private_memory: null,
      flags: ['CKF_TOKEN_INITIALIZED'],
    },
    certificate: {
      subject: 'CN=广州示例科技有限公司',
      organization: '广州示例科技有限公司',
      common_name: '广州示例科技有限公司',
      credit_code: '91440101MA59ABCDEX',
      issuer: 'CN=Keyward Test Issuing CA',
      issuer_name: 'Keyward Test Issuing CA',
      serial: '0A1B',
      not_before: '2026-01-01T00:00:00Z',
      not_after: '2027-01-01T00:00:00Z',
      days_left: 335,
      key: { type: 'ec', curve: 'P-256' },
      is_ca: false,
      sha256: 'AB'.repeat(32),
      renewal: { status: 'not_yet', opens_at: '2026-10-03T00:00:00Z', opens_in_days: 245 },
    },
    certificate_error: null,
    seal: { state: 'none' },
    standing: null,
    next: { action: 'nothing' },
    ...over,
  }
}

export function pinInfo(serial: string, status = pin()): PinInfo {
  return {
    serial,
    status,
    policy: {
      min_len: 8,
      max_len: null,
      require_upper: true,
      require_lower: true,
      require_digit: true,
      require_special: true,
    },
  }
}

export function details(serial: string): CertDetails {
  const k = key(serial)
  return {
    token: k.token,
    certificates: [
      { id: '01', label: 'org', role: 'organisation', summary: k.certificate! },
      {
        id: 'CA',
        label: 'issuing',
        role: 'chain',
        summary: { ...k.certificate!, common_name: 'Keyward Test Issuing CA', is_ca: true, sha256: 'CD'.repeat(32) },
      },
    ],
  }
}
