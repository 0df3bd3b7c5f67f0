// The new-PIN checklist shown while typing. It mirrors the shell's policy (the same rules
// `keyward_pki::PinPolicy` checks, with the key's own limits, read by `pin_status`) so the
// operator sees every rule before anything is sent; the shell checks again before the key
// sees the PIN, so a mistake here never costs a try.

import type { PinPolicy } from './ipc'
import { t } from './i18n'

export interface Check {
  id: string
  label: string
  ok: boolean
}

const ascii = /^[\x21-\x7e]*$/

export function checklist(policy: PinPolicy, pin: string, old = '', again?: string): Check[] {
  const out: Check[] = [
    { id: 'min', label: t('pin.rule_min', { n: policy.min_len }), ok: pin.length >= policy.min_len },
  ]
  if (policy.max_len != null) {
    out.push({ id: 'max', label: t('pin.rule_max', { n: policy.max_len }), ok: pin.length > 0 && pin.length <= policy.max_len })
  }
  if (policy.require_upper) out.push({ id: 'upper', label: t('pin.rule_upper'), ok: /[A-Z]/.test(pin) })
  if (policy.require_lower) out.push({ id: 'lower', label: t('pin.rule_lower'), ok: /[a-z]/.test(pin) })
  if (policy.require_digit) out.push({ id: 'digit', label: t('pin.rule_digit'), ok: /[0-9]/.test(pin) })
  if (policy.require_special) {
    out.push({ id: 'special', label: t('pin.rule_special'), ok: /[!-/:-@[-`{-~]/.test(pin) })
  }
  out.push({ id: 'ascii', label: t('pin.rule_ascii'), ok: pin.length > 0 && ascii.test(pin) })
  if (old) out.push({ id: 'differs', label: t('pin.rule_differs'), ok: pin.length > 0 && pin !== old })
  if (again !== undefined) out.push({ id: 'same', label: t('pin.rule_same'), ok: pin.length > 0 && pin === again })
  return out
}

export type Strength = 'weak' | 'fair' | 'strong'

/** A rough strength for the meter: character classes and length. */
export function strength(pin: string): Strength {
  const classes = [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((r) => r.test(pin)).length
  if (pin.length >= 12 && classes === 4) return 'strong'
  if (pin.length >= 8 && classes >= 3) return 'fair'
  return 'weak'
}
