// Small display helpers shared by the screens.

import { t } from './i18n'
import type { KeyAlgorithm, PinStatus } from './ipc'

// Every date and time the operator reads is on the computer's own clock (Beijing time on a
// Chinese system): the CA and the key speak UTC, and a date cut from the UTC instant is a
// day early for the evening hours of Beijing. `timeZone` is for tests; the screens leave it
// out and get the system's zone.

interface Parts {
  year: string
  month: string
  day: string
  hour: string
  minute: string
}

const formats = new Map<string, Intl.DateTimeFormat>()

function parts(iso: string, timeZone?: string): Parts | null {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return null
  const zone = timeZone ?? ''
  let f = formats.get(zone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
    formats.set(zone, f)
  }
  const out: Record<string, string> = {}
  for (const p of f.formatToParts(d)) out[p.type] = p.value
  return { year: out.year, month: out.month, day: out.day, hour: out.hour, minute: out.minute }
}

/** The operator's date of an instant: `2026-10-23`. */
export function date(iso: string, timeZone?: string): string {
  const p = parts(iso, timeZone)
  return p ? `${p.year}-${p.month}-${p.day}` : iso
}

/** An instant on the operator's own clock, to the minute: `2026-10-23 01:30`. */
export function dateTime(iso: string, timeZone?: string): string {
  const p = parts(iso, timeZone)
  return p ? `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}` : iso
}

export function keyAlgorithm(k: KeyAlgorithm): string {
  switch (k.type) {
    case 'rsa':
      return `RSA-${k.bits}`
    case 'ec':
      return `EC ${k.curve}`
    default:
      return k.oid
  }
}

/** The PIN status as the operator reads it: tries left where the key says. */
export function pinText(p: PinStatus): string {
  if (p.user === 'locked') return t('pin_state.locked')
  if (p.user === 'final_try') return t('pin_state.final_try')
  if (p.user_tries_left != null && p.user !== 'ok') {
    // The keys Keyward knows lock after ten wrong PINs in a row.
    return t('pin_state.tries_left', { n: p.user_tries_left, spent: Math.max(0, 10 - p.user_tries_left) })
  }
  return t(`pin_state.${p.user}`)
}

/** Copies text; falls back to a hidden text area where the clipboard API is missing. */
export async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text)
    return
  } catch {
    const area = document.createElement('textarea')
    area.value = text
    area.setAttribute('readonly', '')
    area.style.position = 'fixed'
    area.style.opacity = '0'
    document.body.appendChild(area)
    area.select()
    document.execCommand('copy')
    area.remove()
  }
}

/** The same as `dateTime`. */
export const localDateTime = dateTime

/** An instant on the operator's own clock: `10:42` when it is today there, else with the date. */
export function clock(iso: string, timeZone?: string, now: Date = new Date()): string {
  const p = parts(iso, timeZone)
  if (!p) return iso
  const today = date(now.toISOString(), timeZone)
  return `${p.year}-${p.month}-${p.day}` === today ? `${p.hour}:${p.minute}` : dateTime(iso, timeZone)
}
