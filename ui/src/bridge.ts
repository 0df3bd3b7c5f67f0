// What web pages ask through the browser bridge, kept live for the window: the prompts the
// shell sends (oldest first; the first is shown), the note left when one ends without an
// answer (timed out, the page gone, the key pulled out), and where the window is asked to go
// (a keyward:// link, or a page's keyward.open the operator agreed to).

import { reactive, ref } from 'vue'
import type { Router } from 'vue-router'
import {
  bridgePrompts,
  navigationTake,
  onBridgeEvents,
  type EndedReason,
  type Navigate,
  type Prompt,
} from './ipc'

export const prompts = reactive<Prompt[]>([])
/** The last prompt that ended without the window's answer, and why. */
export const ended = ref<{ prompt: Prompt; reason: EndedReason } | null>(null)
/** When each prompt arrived on this computer's clock, for its countdown. */
const arrived = new Map<number, number>()
/** The prompts seen lately, so one that ended is still known when its note arrives. */
const seen = new Map<number, Prompt>()

export function deadline(p: Prompt): number | null {
  if (p.expires_in_ms == null) return null
  return (arrived.get(p.id) ?? Date.now()) + p.expires_in_ms
}

function replace(list: Prompt[]) {
  const now = Date.now()
  for (const p of list) {
    if (!arrived.has(p.id)) arrived.set(p.id, now)
    seen.set(p.id, p)
  }
  for (const id of [...arrived.keys()]) if (!list.some((p) => p.id === id)) arrived.delete(id)
  while (seen.size > 16) seen.delete(seen.keys().next().value as number)
  prompts.splice(0, prompts.length, ...list)
}

/** The route of a screen for a key. */
export function routeFor(to: Navigate): string {
  const q = to.key ? `?serial=${encodeURIComponent(to.key)}` : ''
  switch (to.screen) {
    case 'renew':
      return `/renew${q}`
    case 'seal':
      return `/seal${q}`
    case 'activate':
      return `/activate${q}`
    case 'pin':
      return to.key ? `/cert/${encodeURIComponent(to.key)}?change_pin=1` : '/cert?change_pin=1'
    case 'unlock':
      return to.key ? `/unlock/${encodeURIComponent(to.key)}` : '/unlock'
    default:
      return '/'
  }
}

let started: Promise<void> | null = null
let stop: (() => void) | null = null

async function go(router: Router) {
  const to = await navigationTake().catch(() => null)
  if (to) await router.push(routeFor(to))
}

/** Subscribes, then reads what waits already (prompts, a link the app was started with). */
export function startBridge(router: Router): Promise<void> {
  if (!started) {
    started = (async () => {
      stop = await onBridgeEvents({
        prompts: replace,
        ended: (id, reason) => {
          const p = seen.get(id)
          if (p) ended.value = { prompt: p, reason }
        },
        navigate: () => void go(router),
      })
      try {
        replace(await bridgePrompts())
      } catch {
        // The shell has no bridge (tests of other screens): nothing waits.
      }
      await go(router)
    })()
  }
  return started
}

/** For tests: forget everything. */
export function resetBridge() {
  stop?.()
  stop = null
  started = null
  prompts.splice(0)
  arrived.clear()
  seen.clear()
  ended.value = null
}
