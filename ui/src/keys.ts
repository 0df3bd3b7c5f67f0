// The keys plugged in, kept live: loaded once with `token_list`, then kept up to date by the
// shell's insert, remove and change events. No click is ever needed.

import { reactive, ref } from 'vue'
import { onKeyEvents, tokenList, type CommandError, type KeyView } from './ipc'

export const keys = reactive(new Map<string, KeyView>())
export const loading = ref(true)
export const loadError = ref<CommandError | null>(null)

let started: Promise<void> | null = null
let stop: (() => void) | null = null

export function upsert(k: KeyView) {
  keys.set(k.token.serial, k)
}

export function remove(serial: string) {
  keys.delete(serial)
}

/** Keys sorted for display: the ones that need something first, then by label. */
export function sortedKeys(): KeyView[] {
  const urgency = (k: KeyView) =>
    ({
      unlock: 0,
      activate: 1,
      install_certificate: 2,
      apply_new: 3,
      install_seal: 4,
      pay_renewal: 5,
      renew: 6,
      no_certificate: 7,
      nothing: 8,
    })[k.next.action]
  return [...keys.values()].sort(
    (a, b) => urgency(a) - urgency(b) || a.token.label.localeCompare(b.token.label),
  )
}

export async function refresh() {
  try {
    const list = await tokenList()
    keys.clear()
    list.forEach(upsert)
    loadError.value = null
  } catch (e) {
    loadError.value = e as CommandError
  } finally {
    loading.value = false
  }
}

/**
 * Subscribes first, then lists, so no key plugged in meanwhile is missed, and the keys are
 * read from the module once (on a real key each list is USB round trips).
 */
export function startKeys(): Promise<void> {
  if (!started) {
    started = (async () => {
      try {
        stop = await onKeyEvents({ inserted: upsert, changed: upsert, removed: remove })
      } catch {
        // No events from the shell: the keys are still listed once (and again on 重试),
        // rather than Home saying forever that they are being read.
      }
      performance.mark('keyward:subscribed')
      await refresh()
    })()
  }
  return started
}

/** How many keys have something of a kind waiting at the CA (the navigation's badges). */
export function waitingCount(...kinds: string[]): number {
  return [...keys.values()].filter((k) => k.standing?.waiting.some((w) => kinds.includes(w.kind))).length
}

/** For tests: forget everything. */
export function resetKeys() {
  stop?.()
  stop = null
  started = null
  keys.clear()
  loading.value = true
  loadError.value = null
}
