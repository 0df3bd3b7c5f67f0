// Keyward's portal SDK: what a procurement portal's pages use to reach the USB key through
// Keyward's browser bridge. See docs/bridge.md.

export {
  KeywardBridge,
  DEFAULT_URL,
  DEFAULT_TIMEOUT_MS,
  type BridgeOptions,
  type DigestSignature,
  type Environment,
  type HashFunction,
  type KeyCertificate,
  type PinState,
  type Screen,
  type SocketFactory,
  type SocketLike,
  type VersionInfo,
  type WebEidAuthToken,
} from './client.js'
export { KeywardError, type ErrorData } from './errors.js'
export {
  advice as localNetworkAdvice,
  localNetworkState,
  PERMISSION_NAMES,
  type LocalNetworkAdvice,
  type LocalNetworkState,
} from './lna.js'
export {
  BRIDGE_ERROR_CODES,
  SDK_ERROR_CODES,
  ERROR_TEXT,
  LOCALES,
  type BridgeErrorCode,
  type ErrorCode,
  type Locale,
  type SdkErrorCode,
} from './messages.js'
export { createSof, installSofGlobals, REFUSED, SGD, SOR, SUPPORTED, sorOf, type Sof } from './sof.js'
export { parseCertificate, nameText, type Certificate } from './x509.js'
export { toBase64, fromBase64 } from './base64.js'
