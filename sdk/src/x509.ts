// Just enough DER to read an X.509 certificate's fields for SOF_GetCertInfo: a strict reader
// of definite lengths that throws on anything malformed. What a certificate says is only
// shown here; the portal's server decides what to trust (keyward-verify).

import { hex, toBase64 } from './base64.js'

export interface Tlv {
  tag: number
  /** The whole element, header included. */
  raw: Uint8Array
  /** The contents. */
  value: Uint8Array
}

export class DerError extends Error {
  override readonly name = 'DerError'
}

/** Reads one element at `offset`; the element and where the next one starts. */
export function readTlv(buf: Uint8Array, offset = 0): { tlv: Tlv; next: number } {
  const at = (i: number): number => {
    const b = buf[i]
    if (b === undefined) throw new DerError('truncated')
    return b
  }
  const tag = at(offset)
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used in certificates')
  let len = at(offset + 1)
  let head = 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 4) throw new DerError('unsupported length')
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + at(offset + 2 + i)
    head += n
  }
  const end = offset + head + len
  if (end > buf.length) throw new DerError('truncated')
  return {
    tlv: { tag, raw: buf.subarray(offset, end), value: buf.subarray(offset + head, end) },
    next: end,
  }
}

/** The elements inside a constructed one. */
export function children(tlv: Tlv): Tlv[] {
  const out: Tlv[] = []
  let i = 0
  while (i < tlv.value.length) {
    const { tlv: t, next } = readTlv(tlv.value, i)
    out.push(t)
    i = next
  }
  return out
}

export function oidText(value: Uint8Array): string {
  const parts: number[] = []
  let n = 0
  for (const b of value) {
    n = n * 128 + (b & 0x7f)
    if (!(b & 0x80)) {
      if (parts.length === 0) {
        const first = n < 80 ? Math.floor(n / 40) : 2
        parts.push(first, n - first * 40)
      } else parts.push(n)
      n = 0
    }
  }
  return parts.join('.')
}

const NAMES: Record<string, string> = {
  '2.5.4.6': 'C',
  '2.5.4.8': 'ST',
  '2.5.4.7': 'L',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.3': 'CN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.97': 'organizationIdentifier',
  '1.2.840.113549.1.9.1': 'E',
}

export const OID = {
  CN: '2.5.4.3',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  EMAIL: '1.2.840.113549.1.9.1',
  SUBJECT_KEY_ID: '2.5.29.14',
  KEY_USAGE: '2.5.29.15',
  AUTHORITY_KEY_ID: '2.5.29.35',
} as const

function stringValue(t: Tlv): string {
  switch (t.tag) {
    case 0x0c: // UTF8String
      return new TextDecoder('utf-8', { fatal: true }).decode(t.value)
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x14: // TeletexString, read as Latin-1
      return Array.from(t.value, (b) => String.fromCharCode(b)).join('')
    case 0x1e: {
      // BMPString
      let s = ''
      for (let i = 0; i + 1 < t.value.length; i += 2) s += String.fromCharCode((t.value[i]! << 8) | t.value[i + 1]!)
      return s
    }
    case 0x1c: {
      // UniversalString
      let s = ''
      for (let i = 0; i + 3 < t.value.length; i += 4) {
        s += String.fromCodePoint(((t.value[i]! << 24) | (t.value[i + 1]! << 16) | (t.value[i + 2]! << 8) | t.value[i + 3]!) >>> 0)
      }
      return s
    }
    default:
      return `#${hex(t.raw)}`
  }
}

export interface NameAttribute {
  oid: string
  value: string
}

export interface Validity {
  notBefore: Date
  notAfter: Date
}

export interface Extension {
  oid: string
  critical: boolean
  /** The extnValue's contents (the extension's own DER). */
  value: Uint8Array
}

export interface Certificate {
  /** 1, 2 or 3. */
  version: number
  /** Upper-case hex of the serial's bytes, as Keyward shows it. */
  serial: string
  issuer: NameAttribute[]
  subject: NameAttribute[]
  validity: Validity
  /** SubjectPublicKeyInfo, DER. */
  spki: Uint8Array
  /** The extensions' SEQUENCE, DER; empty when there are none. */
  extensionsDer: Uint8Array
  extensions: Extension[]
}

function name(t: Tlv): NameAttribute[] {
  if (t.tag !== 0x30) throw new DerError('a Name is a SEQUENCE')
  const out: NameAttribute[] = []
  for (const rdn of children(t)) {
    if (rdn.tag !== 0x31) throw new DerError('a relative name is a SET')
    for (const atv of children(rdn)) {
      const [type, value] = children(atv)
      if (!type || !value || type.tag !== 0x06) throw new DerError('bad attribute')
      out.push({ oid: oidText(type.value), value: stringValue(value) })
    }
  }
  return out
}

function time(t: Tlv): Date {
  const s = Array.from(t.value, (b) => String.fromCharCode(b)).join('')
  let m: RegExpMatchArray | null
  if (t.tag === 0x17 && (m = s.match(/^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/))) {
    const yy = Number(m[1])
    return new Date(Date.UTC(yy < 50 ? 2000 + yy : 1900 + yy, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])))
  }
  if (t.tag === 0x18 && (m = s.match(/^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/))) {
    return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])))
  }
  throw new DerError('bad time')
}

/** Reads a certificate (DER). Throws DerError when it is not one. */
export function parseCertificate(der: Uint8Array): Certificate {
  const { tlv: cert, next } = readTlv(der)
  if (cert.tag !== 0x30 || next !== der.length) throw new DerError('not a certificate')
  const [tbs] = children(cert)
  if (!tbs || tbs.tag !== 0x30) throw new DerError('no TBSCertificate')
  const f = children(tbs)
  let i = 0
  let version = 1
  if (f[0]?.tag === 0xa0) {
    const [v] = children(f[0])
    if (!v || v.tag !== 0x02 || v.value.length !== 1) throw new DerError('bad version')
    version = v.value[0]! + 1
    i = 1
  }
  const serial = f[i]
  const issuer = f[i + 2]
  const validity = f[i + 3]
  const subject = f[i + 4]
  const spki = f[i + 5]
  if (!serial || serial.tag !== 0x02 || !issuer || !validity || !subject || !spki) {
    throw new DerError('missing fields')
  }
  const [nb, na] = children(validity)
  if (!nb || !na) throw new DerError('bad validity')
  let extensionsDer = new Uint8Array()
  const extensions: Extension[] = []
  for (const t of f.slice(i + 6)) {
    if (t.tag !== 0xa3) continue
    const [seq] = children(t)
    if (!seq || seq.tag !== 0x30) throw new DerError('bad extensions')
    extensionsDer = seq.raw
    for (const e of children(seq)) {
      const parts = children(e)
      const id = parts[0]
      const last = parts[parts.length - 1]
      if (!id || id.tag !== 0x06 || !last || last.tag !== 0x04) throw new DerError('bad extension')
      const critical = parts.length === 3 && parts[1]?.tag === 0x01 && parts[1].value[0] !== 0
      extensions.push({ oid: oidText(id.value), critical, value: last.value })
    }
  }
  let serialBytes = serial.value
  // Keyward shows the serial's bytes as the certificate carries them, sign octet included.
  if (serialBytes.length === 0) throw new DerError('empty serial')
  return {
    version,
    serial: hex(serialBytes, true),
    issuer: name(issuer),
    subject: name(subject),
    validity: { notBefore: time(nb), notAfter: time(na) },
    spki: spki.raw,
    extensionsDer,
    extensions,
  }
}

/** A name as text, in the certificate's order: `C=CN, O=…, CN=…`. */
export function nameText(attrs: NameAttribute[]): string {
  return attrs.map((a) => `${NAMES[a.oid] ?? a.oid}=${a.value}`).join(', ')
}

/** The values of attribute `oid`, joined with ", " when repeated; "" when absent. */
export function attribute(attrs: NameAttribute[], oid: string): string {
  return attrs
    .filter((a) => a.oid === oid)
    .map((a) => a.value)
    .join(', ')
}

export function extension(cert: Certificate, oid: string): Extension | undefined {
  return cert.extensions.find((e) => e.oid === oid)
}

/** SubjectKeyIdentifier as hex (upper case). */
export function subjectKeyId(cert: Certificate): string {
  const e = extension(cert, OID.SUBJECT_KEY_ID)
  if (!e) return ''
  const { tlv } = readTlv(e.value)
  return hex(tlv.value, true)
}

/** AuthorityKeyIdentifier's keyIdentifier as hex (upper case). */
export function authorityKeyId(cert: Certificate): string {
  const e = extension(cert, OID.AUTHORITY_KEY_ID)
  if (!e) return ''
  const { tlv } = readTlv(e.value)
  const id = children(tlv).find((t) => t.tag === 0x80)
  return id ? hex(id.value, true) : ''
}

const KEY_USAGES = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
]

/** The key usages named, comma separated. */
export function keyUsage(cert: Certificate): string {
  const e = extension(cert, OID.KEY_USAGE)
  if (!e) return ''
  const { tlv } = readTlv(e.value)
  if (tlv.tag !== 0x03) throw new DerError('bad key usage')
  const bits = tlv.value.subarray(1)
  return KEY_USAGES.filter((_, i) => ((bits[i >> 3] ?? 0) >> (7 - (i & 7))) & 1).join(', ')
}

/** base64 of DER bytes. */
export function b64(bytes: Uint8Array): string {
  return toBase64(bytes)
}
