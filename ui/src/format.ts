// Small display helpers shared by the screens.

import { t } from './i18n'
import type { KeyAlgorithm, PinStatus } from './ipc'

export function date(iso: string): string {
  return iso.slice(0, 10)
}

export function dateTime(iso: string): string {
  return iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC')
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
  if (p.user_tries_left != null && p.user !== 'ok') return t('pin_state.tries_left', { n: p.user_tries_left })
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

const pad = (n: number) => String(n).padStart(2, '0')

/** An instant on the operator's own clock, to the minute: `2026-12-01 10:42`. */
export function localDateTime(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`
}

/** An instant on the operator's own clock, to the minute: `10:42` today, else with the date. */
export function clock(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  const sameDay = d.toDateString() === new Date().toDateString()
  return sameDay ? `${pad(d.getHours())}:${pad(d.getMinutes())}` : localDateTime(iso)
}
