// Local Network Access: browsers ask the user before a site on the internet may reach this
// computer's loopback address, where Keyward's bridge listens. Chrome asks since 142
// (WebSockets since 147) under the permission `loopback-network` (earlier
// `local-network-access`); a managed browser may pre-allow a portal by policy
// (LoopbackNetworkAllowedForUrls, LocalNetworkAccessAllowedForUrls). The SDK reads the
// permission's state so a page can say what the question means before it appears, and tell a
// refusal from Keyward not running after a failed connection.

import { LNA_GRANTED, LNA_PROMPT, LNA_UNKNOWN, ERROR_TEXT, say, type Locale } from './messages.js'

/** The permission names to ask about, newest first. */
export const PERMISSION_NAMES = ['loopback-network', 'local-network-access'] as const

/** What the browser says about reaching this computer. */
export type LocalNetworkState = 'granted' | 'prompt' | 'denied' | 'unknown'

/** The part of `navigator.permissions` the SDK uses. */
export interface PermissionsLike {
  query(descriptor: { name: string }): Promise<{ state: string }>
}

/** What a page shows about Local Network Access, in the operator's language. */
export interface LocalNetworkAdvice {
  state: LocalNetworkState
  /** Which permission answered, if any. */
  permission: string | null
  /** A heading, when the page should show one (the browser will ask, or has refused). */
  title: string | null
  /** What it means and what to do. */
  text: string
}

/** The state of the first permission the browser knows; `unknown` when none. */
export async function localNetworkState(
  permissions: PermissionsLike | undefined,
): Promise<{ state: LocalNetworkState; permission: string | null }> {
  if (!permissions) return { state: 'unknown', permission: null }
  for (const name of PERMISSION_NAMES) {
    try {
      const status = await permissions.query({ name })
      if (status.state === 'granted' || status.state === 'prompt' || status.state === 'denied') {
        return { state: status.state, permission: name }
      }
    } catch {
      // This browser does not know the name: try the next.
    }
  }
  return { state: 'unknown', permission: null }
}

/** The advice for a state. */
export function advice(
  state: LocalNetworkState,
  permission: string | null,
  locale: Locale,
): LocalNetworkAdvice {
  switch (state) {
    case 'prompt':
      return {
        state,
        permission,
        title: say(LNA_PROMPT.title, locale),
        text: say(LNA_PROMPT.body, locale),
      }
    case 'denied':
      return {
        state,
        permission,
        title: say(LNA_PROMPT.title, locale),
        text: say(ERROR_TEXT.LOCAL_NETWORK_DENIED, locale),
      }
    case 'granted':
      return { state, permission, title: null, text: say(LNA_GRANTED, locale) }
    case 'unknown':
      return { state, permission, title: null, text: say(LNA_UNKNOWN, locale) }
  }
}
