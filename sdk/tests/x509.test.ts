import { describe, expect, it } from 'vitest'

import { fromBase64 } from '../src/base64.js'
import { pemBody } from './fake.js'
import { authorityKeyId, keyUsage, nameText, parseCertificate, subjectKeyId, DerError } from '../src/x509.js'


describe('the certificate reader', () => {
  it('reads what OpenSSL wrote', () => {
    const c = parseCertificate(fromBase64(pemBody('leaf.pem')))
    expect(c.version).toBe(3)
    // The serial's bytes as carried, sign octet included, as Keyward shows serials.
    expect(c.serial).toBe('00A1B2C3D4')
    expect(nameText(c.subject)).toBe(
      'C=CN, O=广州市示例科技有限公司, OU=投标部, CN=广州市示例科技有限公司, organizationIdentifier=NTRCN-91440101MA5D000018',
    )
    expect(nameText(c.issuer)).toBe('C=CN, O=示例 CA, OU=测试, CN=示例签发 CA')
    expect(c.validity.notBefore.toISOString()).toBe('2026-12-01T11:55:49.000Z')
    expect(c.validity.notAfter.toISOString()).toBe('2028-11-30T11:55:49.000Z')
    expect(subjectKeyId(c)).toBe('96EEDFD2AC7DFDBAB94942541C76E3311CB9AE5D')
    expect(authorityKeyId(c)).toBe('E1772E2D67A8F703DD14B5AAF3E98BB080D217B5')
    expect(keyUsage(c)).toBe('digitalSignature, nonRepudiation')
    expect(btoa(String.fromCharCode(...c.spki))).toBe(
      'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElE9dcZX+UyXk8/+yCzZ7xtLoj9k/PJ/vfubHoBHfy7CR5rdjjxOgZgWHEIgL08QFmQd8oQLnEOckGmVinD66Ow==',
    )
    expect(c.extensions.map((e) => e.oid)).toEqual(['2.5.29.15', '2.5.29.14', '2.5.29.35', '2.5.29.19'])
    expect(c.extensions[0]?.critical).toBe(true)
  })

  it('throws on anything that is not a certificate, truncated or with bytes after it', () => {
    const der = fromBase64(pemBody('leaf.pem'))
    for (const bad of [new Uint8Array(), der.subarray(0, der.length - 1), new Uint8Array([...der, 0]), new Uint8Array([0x30, 0x85, 1, 1, 1, 1, 1])]) {
      expect(() => parseCertificate(bad)).toThrow(DerError)
    }
  })

  it('survives every single-byte truncation and flip without anything but DerError', () => {
    const der = fromBase64(pemBody('leaf.pem'))
    for (let i = 0; i < der.length; i += 7) {
      const flipped = new Uint8Array(der)
      flipped[i] = flipped[i]! ^ 0xff
      for (const input of [der.subarray(0, i), flipped]) {
        try {
          parseCertificate(input)
        } catch (e) {
          if (!(e instanceof DerError) && !(e instanceof TypeError)) throw e
        }
      }
    }
  })
})
