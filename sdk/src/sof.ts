// A GM/T 0020 (证书应用综合服务接口) layer over the bridge, for portals written against the
// `SOF_*` interface Chinese CA clients expose. The names, arguments and results follow the
// standard; two things differ because the bridge is what it is:
//
// - every function returns a Promise (the bridge is a WebSocket; nothing can block a page);
// - like the standard, a function never throws: it resolves to "" / false / -1 and
//   `SOF_GetLastError()` says why (an `SOR_*` code); `keywardLastError()` gives the
//   KeywardError with the operator's sentence.
//
// What Keyward refuses stays refused here: no decryption, no file paths, no signature the
// operator was not shown, no PIN from the page (SOF_Login's and SOF_ChangePassWd's PIN
// arguments are ignored; the operator types the PIN into Keyward's own window). A CertID is
// the key's serial, as SOF_GetUserList lists it.

import { bytesOf, toBase64 } from './base64.js'
import { KeywardBridge, type KeyCertificate } from './client.js'
import { KeywardError } from './errors.js'
import type { ErrorCode } from './messages.js'
import { fromBase64 } from './base64.js'
import {
  attribute,
  authorityKeyId,
  b64,
  DerError,
  keyUsage,
  nameText,
  OID,
  parseCertificate,
  subjectKeyId,
  type Certificate,
} from './x509.js'

/** Certificate fields of SOF_GetCertInfo (GM/T 0006 identifiers). */
export const SGD = {
  CERT_VERSION: 0x00000001,
  CERT_SERIAL: 0x00000002,
  CERT_ISSUER: 0x00000005,
  CERT_VALID_TIME: 0x00000006,
  CERT_SUBJECT: 0x00000007,
  CERT_DER_PUBLIC_KEY: 0x00000008,
  CERT_DER_EXTENSIONS: 0x00000009,
  EXT_AUTHORITYKEYIDENTIFIER_INFO: 0x00000011,
  EXT_SUBJECTKEYIDENTIFIER_INFO: 0x00000012,
  EXT_KEYUSAGE_INFO: 0x00000013,
  CERT_ISSUER_CN: 0x00000021,
  CERT_ISSUER_O: 0x00000022,
  CERT_ISSUER_OU: 0x00000023,
  CERT_SUBJECT_CN: 0x00000031,
  CERT_SUBJECT_O: 0x00000032,
  CERT_SUBJECT_OU: 0x00000033,
  CERT_SUBJECT_EMAIL: 0x00000034,
  /** Signature methods (SOF_SetSignMethod). */
  SM3_RSA: 0x00010001,
  SHA1_RSA: 0x00010002,
  SHA256_RSA: 0x00010004,
  SM3_SM2: 0x00020201,
} as const

/** GM/T 0020 result codes (SOF_GetLastError). */
export const SOR = {
  OK: 0x00000000,
  UNKNOWNERR: 0x0b000001,
  NOTSUPPORTYETERR: 0x0b000002,
  NOTINITIALIZEERR: 0x0b000011,
  TIMEOUTERR: 0x0b000101,
  INDATALENERR: 0x0b000200,
  INDATAERR: 0x0b000201,
  GENRANDERR: 0x0b000300,
  KEYNOTFOUNDERR: 0x0b000309,
  CERTNOTFOUNTERR: 0x0b000310,
  CERTENCODEERR: 0x0b000405,
  SIGNDATAERR: 0x0b000409,
  PARAMETERNOTSUPPORTEERR: 0x0b000419,
} as const

/** Why a function of the standard is refused. */
export type Refusal = 'decryption' | 'file' | 'verify' | 'exchange-certificate' | 'xml' | 'timestamp' | 'encryption' | 'user-info'

/** The functions of GM/T 0020 Keyward refuses, and why (docs/bridge.md lists them). */
export const REFUSED = {
  SOF_DecryptData: 'decryption',
  SOF_DecryptFile: 'decryption',
  SOF_PriKeyDecrypt: 'decryption',
  SOF_AsDecrypt: 'decryption',
  SOF_EncryptData: 'encryption',
  SOF_EncryptFile: 'file',
  SOF_PubKeyEncrypt: 'encryption',
  SOF_AsEncrypt: 'encryption',
  SOF_SetEncryptMethod: 'encryption',
  SOF_GetEncryptMethod: 'encryption',
  SOF_SignFile: 'file',
  SOF_VerifySignedFile: 'file',
  SOF_ExportExChangeUserCert: 'exchange-certificate',
  SOF_VerifySignedData: 'verify',
  SOF_VerifySignedMessage: 'verify',
  SOF_GetInfoFromSignedMessage: 'verify',
  SOF_ValidateCert: 'verify',
  SOF_SignDataXML: 'xml',
  SOF_VerifySignedDataXML: 'xml',
  SOF_GetXMLSignatureInfo: 'xml',
  SOF_CreateTimeStampRequest: 'timestamp',
  SOF_CreateTimeStampResponse: 'timestamp',
  SOF_VerifyTimeStamp: 'timestamp',
  SOF_GetTimeStampInfo: 'timestamp',
  SOF_GetUserInfo: 'user-info',
} as const satisfies Readonly<Record<string, Refusal>>

const REFUSAL_DETAIL: Readonly<Record<Refusal, string>> = {
  decryption: 'Keyward never decrypts for a web page',
  file: 'Keyward never reads or writes files named by a web page',
  verify: 'verify signatures on the portal’s server (keyward-verify), where the result can be trusted',
  'exchange-certificate': 'organisation keys hold one signing certificate, no encryption certificate',
  xml: 'XML signatures are not offered; sign the text with SOF_SignMessage',
  timestamp: 'time stamps are not offered',
  encryption: 'encryption to the key is not offered, since the key never decrypts for a page',
  'user-info': 'read the certificate with SOF_GetCertInfo',
}

/** The functions this layer implements. */
export const SUPPORTED = [
  'SOF_GetVersion',
  'SOF_GetUserList',
  'SOF_ExportUserCert',
  'SOF_GetCertInfo',
  'SOF_GetCertInfoByOid',
  'SOF_Login',
  'SOF_GetPinRetryCount',
  'SOF_ChangePassWd',
  'SOF_SignData',
  'SOF_SignMessage',
  'SOF_SetSignMethod',
  'SOF_GetSignMethod',
  'SOF_GenRandom',
  'SOF_GetLastError',
] as const

export type Sof = {
  SOF_GetVersion(): Promise<string>
  SOF_GetUserList(): Promise<string>
  SOF_ExportUserCert(certId: string): Promise<string>
  SOF_GetCertInfo(base64Cert: string, type: number): Promise<string>
  SOF_GetCertInfoByOid(base64Cert: string, oid: string): Promise<string>
  SOF_Login(certId: string, passWd?: string): Promise<boolean>
  SOF_GetPinRetryCount(certId: string): Promise<number>
  SOF_ChangePassWd(certId: string, oldPassWd?: string, newPassWd?: string): Promise<boolean>
  SOF_SignData(certId: string, inData: string): Promise<string>
  SOF_SignMessage(dwFlag: number, certId: string, inData: string): Promise<string>
  SOF_SetSignMethod(method: number): Promise<number>
  SOF_GetSignMethod(): Promise<number>
  SOF_GenRandom(len: number): Promise<string>
  SOF_GetLastError(): number
  /** Not in the standard: the last failure with the operator's sentence (null after a success). */
  keywardLastError(): KeywardError | null
} & { [name in keyof typeof REFUSED]: (...args: unknown[]) => Promise<string | boolean> }

/** The SOR code a KeywardError is reported as. */
export function sorOf(code: ErrorCode, signing: boolean): number {
  switch (code) {
    case 'NOT_SUPPORTED':
    case 'METHOD_NOT_FOUND':
      return SOR.NOTSUPPORTYETERR
    case 'INVALID_ARGUMENT':
    case 'INVALID_REQUEST':
      return SOR.INDATAERR
    case 'KEY_NOT_FOUND':
    case 'KEY_AMBIGUOUS':
      return SOR.CERTNOTFOUNTERR
    case 'KEY_REMOVED':
      return SOR.KEYNOTFOUNDERR
    case 'USER_TIMEOUT':
    case 'TIMEOUT':
      return SOR.TIMEOUTERR
    case 'ORIGIN_NOT_ALLOWED':
    case 'NOT_CONNECTED':
    case 'BRIDGE_UNREACHABLE':
    case 'LOCAL_NETWORK_DENIED':
    case 'NEEDS_USER_GESTURE':
    case 'INSECURE_ORIGIN':
      return SOR.NOTINITIALIZEERR
    case 'USER_CANCELLED':
    case 'PIN_INCORRECT':
    case 'PIN_LOCKED':
    case 'FINAL_TRY_UNCONFIRMED':
    case 'ACTION_PENDING':
    case 'TOKEN_ERROR':
      return signing ? SOR.SIGNDATAERR : SOR.UNKNOWNERR
    case 'CONNECTION_LOST':
    case 'BAD_ANSWER':
    case 'INTERNAL_ERROR':
      return SOR.UNKNOWNERR
  }
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** The SOF_* functions over `bridge` (connected by the page from a click first). */
export function createSof(bridge: KeywardBridge): Sof {
  let last = SOR.OK as number
  let lastError: KeywardError | null = null
  const ok = () => {
    last = SOR.OK
    lastError = null
  }
  const fail = (e: unknown, signing: boolean, sor?: number) => {
    if (e instanceof KeywardError) {
      lastError = e
      last = sor ?? sorOf(e.code, signing)
    } else {
      lastError = new KeywardError('INTERNAL_ERROR', { detail: String(e), locale: bridge.locale })
      last = sor ?? SOR.UNKNOWNERR
    }
  }
  const refuse = (detail: string, sor: number = SOR.NOTSUPPORTYETERR) => {
    lastError = new KeywardError('NOT_SUPPORTED', { detail, locale: bridge.locale })
    last = sor
  }

  /** Runs `f`; its value, or `failed` with the last error set. */
  async function guard<T>(failed: T, signing: boolean, f: () => Promise<T>): Promise<T> {
    try {
      const v = await f()
      ok()
      return v
    } catch (e) {
      fail(e, signing)
      return failed
    }
  }

  async function key(certId: string): Promise<KeyCertificate> {
    const list = await bridge.certificates()
    const found = list.find((c) => c.keySerial === certId)
    if (!found) {
      throw new KeywardError('KEY_NOT_FOUND', { detail: `no key ${certId} is plugged in`, locale: bridge.locale })
    }
    return found
  }

  function cert(base64Cert: string): Certificate {
    try {
      return parseCertificate(fromBase64(base64Cert))
    } catch (e) {
      if (e instanceof DerError || e instanceof TypeError) {
        throw Object.assign(new KeywardError('INVALID_ARGUMENT', { detail: `not a certificate: ${e.message}`, locale: bridge.locale }), {
          sor: SOR.CERTENCODEERR,
        })
      }
      throw e
    }
  }

  async function certGuard(f: () => string): Promise<string> {
    try {
      const v = f()
      ok()
      return v
    } catch (e) {
      const sor = (e as { sor?: number }).sor
      fail(e, false, sor)
      return ''
    }
  }

  const sof: Record<string, unknown> = {
    async SOF_GetVersion() {
      return guard('', false, async () => {
        const v = await bridge.version()
        return `Keyward ${v.version} (bridge protocol ${v.protocol}; GM/T 0020 layer)`
      })
    },

    /** `名称||CertID&&&` for each key: the organisation, and the key's serial as CertID. */
    async SOF_GetUserList() {
      return guard('', false, async () => {
        const list = await bridge.certificates()
        return list.map((c) => `${c.organisation ?? c.keySerial}||${c.keySerial}&&&`).join('')
      })
    },

    async SOF_ExportUserCert(certId: string) {
      return guard('', false, async () => (await key(certId)).certificate)
    },

    async SOF_GetCertInfo(base64Cert: string, type: number) {
      return certGuard(() => {
        const c = cert(base64Cert)
        switch (type) {
          case SGD.CERT_VERSION:
            return `V${c.version}`
          case SGD.CERT_SERIAL:
            return c.serial
          case SGD.CERT_ISSUER:
            return nameText(c.issuer)
          case SGD.CERT_VALID_TIME:
            return `${isoSeconds(c.validity.notBefore)} - ${isoSeconds(c.validity.notAfter)}`
          case SGD.CERT_SUBJECT:
            return nameText(c.subject)
          case SGD.CERT_DER_PUBLIC_KEY:
            return b64(c.spki)
          case SGD.CERT_DER_EXTENSIONS:
            return b64(c.extensionsDer)
          case SGD.EXT_AUTHORITYKEYIDENTIFIER_INFO:
            return authorityKeyId(c)
          case SGD.EXT_SUBJECTKEYIDENTIFIER_INFO:
            return subjectKeyId(c)
          case SGD.EXT_KEYUSAGE_INFO:
            return keyUsage(c)
          case SGD.CERT_ISSUER_CN:
            return attribute(c.issuer, OID.CN)
          case SGD.CERT_ISSUER_O:
            return attribute(c.issuer, OID.O)
          case SGD.CERT_ISSUER_OU:
            return attribute(c.issuer, OID.OU)
          case SGD.CERT_SUBJECT_CN:
            return attribute(c.subject, OID.CN)
          case SGD.CERT_SUBJECT_O:
            return attribute(c.subject, OID.O)
          case SGD.CERT_SUBJECT_OU:
            return attribute(c.subject, OID.OU)
          case SGD.CERT_SUBJECT_EMAIL:
            return attribute(c.subject, OID.EMAIL)
          default:
            throw Object.assign(
              new KeywardError('INVALID_ARGUMENT', { detail: `certificate field 0x${type.toString(16)} is not offered`, locale: bridge.locale }),
              { sor: SOR.PARAMETERNOTSUPPORTEERR },
            )
        }
      })
    },

    /**
     * A subject attribute with that OID as text (e.g. 2.5.4.97, organizationIdentifier, which
     * carries `NTRCN-` and the credit code), else an extension's value, base64 DER.
     */
    async SOF_GetCertInfoByOid(base64Cert: string, oid: string) {
      return certGuard(() => {
        const c = cert(base64Cert)
        const value = attribute(c.subject, oid)
        if (value) return value
        const ext = c.extensions.find((e) => e.oid === oid)
        return ext ? b64(ext.value) : ''
      })
    },

    /**
     * Keyward asks for the PIN in its own window (the page's `passWd` is ignored) and signs a
     * login: true when the operator confirmed with the right PIN. It proves nothing to the
     * portal's server; log in with keyward.authenticate over a server nonce for that.
     */
    async SOF_Login(certId: string, _passWd?: string) {
      return guard(false, false, async () => {
        const nonce = toBase64(bridge.randomBytes(32))
        await bridge.authenticate({ nonce, keySerial: certId, purpose: 'login' })
        return true
      })
    },

    /** Tries left as the key reports them; 0 when locked, 1 at the final try; -1 when the key does not say. */
    async SOF_GetPinRetryCount(certId: string) {
      return guard(-1, false, async () => {
        const pin = (await key(certId)).pin
        if (pin?.triesLeft !== null && pin?.triesLeft !== undefined) return pin.triesLeft
        if (pin?.state === 'locked') return 0
        if (pin?.state === 'final_try') return 1
        return -1
      })
    },

    /**
     * Opens 修改密码 for the key in Keyward (the page's PINs are ignored: the operator changes
     * the PIN there). true when Keyward brought the screen forward.
     */
    async SOF_ChangePassWd(certId: string, _old?: string, _new?: string) {
      return guard(false, false, async () => {
        await bridge.open({ screen: 'pin', keySerial: certId })
        return true
      })
    },

    /** A signature over `inData` (UTF-8), which the operator reads in Keyward first; base64. */
    async SOF_SignData(certId: string, inData: string) {
      return guard('', true, async () => {
        if (typeof inData !== 'string' || inData.length === 0) {
          throw new KeywardError('INVALID_ARGUMENT', { detail: 'InData is empty', locale: bridge.locale })
        }
        return (await bridge.signData({ keySerial: certId, data: bytesOf(inData), hashFunction: 'SHA-256' })).signature
      })
    },

    /** CMS SignedData over `inData` (UTF-8): dwFlag 0 carries the content, 1 leaves it out. */
    async SOF_SignMessage(dwFlag: number, certId: string, inData: string) {
      return guard('', true, async () => {
        if (dwFlag !== 0 && dwFlag !== 1) {
          throw new KeywardError('INVALID_ARGUMENT', { detail: 'dwFlag is 0 (with content) or 1 (detached)', locale: bridge.locale })
        }
        if (typeof inData !== 'string' || inData.length === 0) {
          throw new KeywardError('INVALID_ARGUMENT', { detail: 'InData is empty', locale: bridge.locale })
        }
        return bridge.signMessage({ keySerial: certId, data: bytesOf(inData), detached: dwFlag === 1 })
      })
    },

    /** Keyward signs with SHA-256 (RSA PKCS#1 v1.5, or ECDSA P-256 for EC keys): only SGD_SHA256_RSA is accepted. */
    async SOF_SetSignMethod(method: number) {
      if (method === SGD.SHA256_RSA) {
        ok()
        return SOR.OK
      }
      refuse(`sign method 0x${method.toString(16)}: Keyward signs with SHA-256`, SOR.PARAMETERNOTSUPPORTEERR)
      return last
    },

    async SOF_GetSignMethod() {
      ok()
      return SGD.SHA256_RSA
    },

    /** `len` random bytes (1 to 1024) from the browser's generator, base64. */
    async SOF_GenRandom(len: number) {
      if (!Number.isInteger(len) || len < 1 || len > 1024) {
        refuse(`random length ${len}: 1 to 1024`, SOR.INDATALENERR)
        return ''
      }
      return guard('', false, async () => toBase64(bridge.randomBytes(len)))
    },

    SOF_GetLastError() {
      return last
    },

    keywardLastError() {
      return lastError
    },
  }
  for (const [fn, why] of Object.entries(REFUSED) as [string, Refusal][]) {
    sof[fn] = async () => {
      refuse(`${fn}: ${REFUSAL_DETAIL[why]}`)
      // Functions answering a string answer "", those answering a boolean false.
      return /^SOF_(Verify|ValidateCert|EncryptFile|DecryptFile|SignFile|SetEncryptMethod)/.test(fn) ? false : ''
    }
  }
  return sof as Sof
}

/** Puts the SOF_* functions on `target` (e.g. `window`) for pages that call them as globals. */
export function installSofGlobals(target: Record<string, unknown>, sof: Sof): void {
  for (const [name, fn] of Object.entries(sof)) {
    if (name.startsWith('SOF_')) target[name] = fn
  }
}
