// The CA's support contacts, shared by every screen that shows them: asked for once when
// first needed and again when a minute old, so a dead end shows them at once without a
// request of its own each time. The shell falls back to the copy kept from the last fetch
// when the CA does not answer (`fresh` false).

import { ref } from 'vue'
import { caProfile, type Contacts } from './ipc'

export const contacts = ref<Contacts | null>(null)
export const contactsLoaded = ref(false)

let inFlight: Promise<void> | null = null
let askedAt = 0

/** Asks the shell for the contacts unless it did less than `maxAgeMs` ago. */
export function loadContacts(maxAgeMs = 60_000): Promise<void> {
  if (inFlight) return inFlight
  if (contactsLoaded.value && Date.now() - askedAt < maxAgeMs) return Promise.resolve()
  askedAt = Date.now()
  inFlight = (async () => {
    try {
      contacts.value = (await caProfile()) ?? contacts.value
    } catch {
      // Nothing better to show than what is in hand.
    } finally {
      contactsLoaded.value = true
      inFlight = null
    }
  })()
  return inFlight
}

/** Error codes after which the operator cannot go on alone: the CA's contacts are shown. */
export const DEAD_END_CODES: readonly string[] = [
  // The CA cannot be reached, or not trusted.
  'ca_offline',
  'ca_timeout',
  'ca_unavailable',
  'ca_untrusted',
  'ca_malformed',
  'ca_other',
  // The key or its driver.
  'module_load',
  'no_module',
  'driver_profile',
  'pkcs11',
  'unsupported',
  'malformed_data',
  'no_certificate',
  // The certificate or the business cannot go further.
  'certificate_expired',
  'ca_certificate_expired',
  'certificate_untrusted',
  'certificate_mismatch',
  'ca_key_not_found',
  'ca_key_not_activated',
  'ca_forbidden',
  'ca_unauthorized',
  'rejected',
  'unlock_by_other',
  'ca_code_attempts_exhausted',
  'ca_code_daily_limit',
  'seal_invalid',
  'seal_other_certificate',
  'seal_write_mismatch',
  'internal',
  'support_bundle',
]

/** Did the CA not answer (the network, TLS, the service down)? */
export const isCaUnreachable = (code: string) =>
  ['ca_offline', 'ca_timeout', 'ca_unavailable', 'ca_untrusted'].includes(code)

/** Is this error one the operator needs the CA's help with? */
export const isDeadEnd = (code: string) => DEAD_END_CODES.includes(code)

/** For tests: forget what was fetched. */
export function resetContacts() {
  contacts.value = null
  contactsLoaded.value = false
  inFlight = null
  askedAt = 0
}
