import { describe, expect, it } from 'vitest'

import { KeywardBridge } from '../src/client.js'
import { createSof, installSofGlobals, REFUSED, SGD, SOR, SUPPORTED } from '../src/sof.js'
import { page, pemBody, rpcError, VERSION, type Handler } from './fake.js'

const LEAF = pemBody('leaf.pem')
const PAGE_PIN = 'Page#Pin2026'

function world(overrides: Partial<Record<string, (params: Record<string, unknown>) => ReturnType<Handler>>> = {}) {
  const handler: Handler = (method, params) => {
    const o = overrides[method]
    if (o) return o(params)
    switch (method) {
      case 'keyward.version':
        return VERSION
      case 'keyward.certificates':
        return {
          result: [
            { key_serial: 'K1', certificate: LEAF, organisation: '广州市示例科技有限公司', uscc: '91440101MA5D000018', not_after: '2028-11-30T11:55:49Z', pin: { state: 'count_low', tries_left: 8 } },
            { key_serial: 'K2', certificate: LEAF, organisation: '广州市另一科技有限公司', uscc: null, not_after: '', pin: { state: 'final_try', tries_left: null } },
            { key_serial: 'K3', certificate: LEAF, organisation: null, uscc: null, not_after: '', pin: { state: 'ok', tries_left: null } },
          ],
        }
      case 'keyward.authenticate':
        return { result: { unverifiedCertificate: LEAF, algorithm: 'ES256', signature: 'c2ln', format: 'web-eid:1.0', appVersion: 'urn:keyward:bridge:0.1.0' } }
      case 'keyward.signData':
        return { result: { signature: 'cmF3', algorithm: { cryptoAlgorithm: 'ECC', hashFunction: 'SHA-256', paddingScheme: 'NONE' } } }
      case 'keyward.signMessage':
        return { result: { cms: params.detached ? 'ZGV0YWNoZWQ=' : 'YXR0YWNoZWQ=' } }
      case 'keyward.open':
        return rpcError('NOT_SUPPORTED')
      default:
        return rpcError('METHOD_NOT_FOUND')
    }
  }
  const p = page(handler)
  const bridge = new KeywardBridge({ socket: p.factory, environment: p.env })
  return { p, bridge, sof: createSof(bridge), sent: () => p.sockets.flatMap((s) => s.sent) }
}

describe('the SOF layer', () => {
  it('lists users as 名称||CertID&&& with the key serial as CertID, and exports their certificates', async () => {
    const { bridge, sof } = world()
    await bridge.connect()
    expect(await sof.SOF_GetUserList()).toBe('广州市示例科技有限公司||K1&&&广州市另一科技有限公司||K2&&&K3||K3&&&')
    expect(sof.SOF_GetLastError()).toBe(SOR.OK)
    expect(await sof.SOF_ExportUserCert('K1')).toBe(LEAF)
    expect(await sof.SOF_ExportUserCert('K9')).toBe('')
    expect(sof.SOF_GetLastError()).toBe(SOR.CERTNOTFOUNTERR)
    expect(sof.keywardLastError()?.message).toContain('USB Key')
    expect(await sof.SOF_GetVersion()).toContain('Keyward 0.1.0')
  })

  it('reads certificate fields by their GM/T 0006 identifiers', async () => {
    const { sof } = world()
    const info = async (t: number) => sof.SOF_GetCertInfo(LEAF, t)
    expect(await info(SGD.CERT_VERSION)).toBe('V3')
    expect(await info(SGD.CERT_SERIAL)).toBe('00A1B2C3D4')
    expect(await info(SGD.CERT_SUBJECT_CN)).toBe('广州市示例科技有限公司')
    expect(await info(SGD.CERT_SUBJECT_O)).toBe('广州市示例科技有限公司')
    expect(await info(SGD.CERT_SUBJECT_OU)).toBe('投标部')
    expect(await info(SGD.CERT_SUBJECT_EMAIL)).toBe('')
    expect(await info(SGD.CERT_ISSUER_CN)).toBe('示例签发 CA')
    expect(await info(SGD.CERT_ISSUER_O)).toBe('示例 CA')
    expect(await info(SGD.CERT_ISSUER_OU)).toBe('测试')
    expect(await info(SGD.CERT_ISSUER)).toBe('C=CN, O=示例 CA, OU=测试, CN=示例签发 CA')
    expect(await info(SGD.CERT_SUBJECT)).toContain('organizationIdentifier=NTRCN-91440101MA5D000018')
    expect(await info(SGD.CERT_VALID_TIME)).toBe('2026-12-01T11:55:49Z - 2028-11-30T11:55:49Z')
    expect(await info(SGD.CERT_DER_PUBLIC_KEY)).toMatch(/^MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/)
    expect(await info(SGD.EXT_SUBJECTKEYIDENTIFIER_INFO)).toBe('96EEDFD2AC7DFDBAB94942541C76E3311CB9AE5D')
    expect(await info(SGD.EXT_AUTHORITYKEYIDENTIFIER_INFO)).toBe('E1772E2D67A8F703DD14B5AAF3E98BB080D217B5')
    expect(await info(SGD.EXT_KEYUSAGE_INFO)).toBe('digitalSignature, nonRepudiation')
    expect((await info(SGD.CERT_DER_EXTENSIONS)).length).toBeGreaterThan(20)
    expect(sof.SOF_GetLastError()).toBe(SOR.OK)
    expect(await info(0x1c)).toBe('')
    expect(sof.SOF_GetLastError()).toBe(SOR.PARAMETERNOTSUPPORTEERR)
    expect(await sof.SOF_GetCertInfo('not a certificate', SGD.CERT_SERIAL)).toBe('')
    expect(sof.SOF_GetLastError()).toBe(SOR.CERTENCODEERR)
    expect(await sof.SOF_GetCertInfo(btoa('\x30\x03\x02\x01\x01'), SGD.CERT_SERIAL)).toBe('')
    expect(sof.SOF_GetLastError()).toBe(SOR.CERTENCODEERR)
    // By OID: the credit code's attribute as text, an extension as base64 DER.
    expect(await sof.SOF_GetCertInfoByOid(LEAF, '2.5.4.97')).toBe('NTRCN-91440101MA5D000018')
    expect(await sof.SOF_GetCertInfoByOid(LEAF, '2.5.29.19')).toBe('MAA=')
    expect(await sof.SOF_GetCertInfoByOid(LEAF, '1.2.3.4')).toBe('')
  })

  it('SOF_Login asks Keyward, never passes the page’s PIN, and reports a wrong PIN as false', async () => {
    let authenticate: ReturnType<Handler> = undefined
    const { bridge, sof, sent } = world({ 'keyward.authenticate': () => authenticate })
    await bridge.connect()
    authenticate = { result: { unverifiedCertificate: LEAF, algorithm: 'ES256', signature: 'c2ln', format: 'web-eid:1.0', appVersion: 'x' } }
    expect(await sof.SOF_Login('K1', PAGE_PIN)).toBe(true)
    authenticate = rpcError('PIN_INCORRECT', { tries_left: 7, final_try: false })
    expect(await sof.SOF_Login('K1', PAGE_PIN)).toBe(false)
    expect(sof.keywardLastError()?.code).toBe('PIN_INCORRECT')
    expect(sof.keywardLastError()?.message).toContain('7 次')
    const logins = sent().filter((r) => r.method === 'keyward.authenticate')
    expect(logins).toHaveLength(2)
    for (const l of logins) {
      expect(Object.keys(l.params).sort()).toEqual(['key_serial', 'nonce', 'purpose'])
      expect(l.params.purpose).toBe('login')
      expect(String(l.params.nonce)).toHaveLength(44)
    }
  })

  it('no PIN the page passes ever leaves the page', async () => {
    const { bridge, sof, p } = world()
    await bridge.connect()
    await sof.SOF_Login('K1', PAGE_PIN)
    await sof.SOF_ChangePassWd('K1', PAGE_PIN, `${PAGE_PIN}new`)
    const frames = p.sockets.flatMap((s) => s.raw).join('\n')
    expect(frames).not.toContain(PAGE_PIN)
  })

  it('tries left as the key says them; the final try is 1, unknown -1', async () => {
    const { bridge, sof } = world()
    await bridge.connect()
    expect(await sof.SOF_GetPinRetryCount('K1')).toBe(8)
    expect(await sof.SOF_GetPinRetryCount('K2')).toBe(1)
    expect(await sof.SOF_GetPinRetryCount('K3')).toBe(-1)
    expect(await sof.SOF_GetPinRetryCount('K9')).toBe(-1)
    expect(sof.SOF_GetLastError()).toBe(SOR.CERTNOTFOUNTERR)
  })

  it('SOF_ChangePassWd opens 修改密码 in Keyward; a host without a window says so', async () => {
    const { bridge, sof, sent } = world()
    await bridge.connect()
    expect(await sof.SOF_ChangePassWd('K1', 'old', 'new')).toBe(false)
    expect(sof.SOF_GetLastError()).toBe(SOR.NOTSUPPORTYETERR)
    expect(sof.keywardLastError()?.message).toContain('打开 Keyward')
    expect(sent().find((r) => r.method === 'keyward.open')?.params).toEqual({ screen: 'pin', key_serial: 'K1' })
    const w = world({ 'keyward.open': () => ({ result: {} }) })
    await w.bridge.connect()
    expect(await w.sof.SOF_ChangePassWd('K1')).toBe(true)
  })

  it('SOF_SignData signs the text itself through signData; SOF_SignMessage maps dwFlag to attached or detached', async () => {
    const { bridge, sof, sent } = world()
    await bridge.connect()
    expect(await sof.SOF_SignData('K1', '报价：壹佰万元整')).toBe('cmF3')
    expect(sent().find((r) => r.method === 'keyward.signData')?.params).toEqual({
      key_serial: 'K1',
      data: '5oql5Lu377ya5aO55L2w5LiH5YWD5pW0',
      hash_function: 'SHA-256',
    })
    // Never the digest-only keyward.sign: the operator must be able to read what is signed.
    expect(sent().some((r) => r.method === 'keyward.sign')).toBe(false)
    expect(await sof.SOF_SignMessage(0, 'K1', '报价')).toBe('YXR0YWNoZWQ=')
    expect(await sof.SOF_SignMessage(1, 'K1', '报价')).toBe('ZGV0YWNoZWQ=')
    expect(await sof.SOF_SignMessage(2, 'K1', '报价')).toBe('')
    expect(sof.SOF_GetLastError()).toBe(SOR.INDATAERR)
    expect(await sof.SOF_SignData('K1', '')).toBe('')
    expect(sof.SOF_GetLastError()).toBe(SOR.INDATAERR)
  })

  it('a cancelled or refused signature is SOR_SIGNDATAERR with the reason kept', async () => {
    const { bridge, sof } = world({ 'keyward.signMessage': () => rpcError('USER_CANCELLED') })
    await bridge.connect()
    expect(await sof.SOF_SignMessage(0, 'K1', '报价')).toBe('')
    expect(sof.SOF_GetLastError()).toBe(SOR.SIGNDATAERR)
    expect(sof.keywardLastError()?.code).toBe('USER_CANCELLED')
    // Not connected at all: not initialised.
    const w = world()
    expect(await w.sof.SOF_GetUserList()).toBe('')
    expect(w.sof.SOF_GetLastError()).toBe(SOR.NOTINITIALIZEERR)
  })

  it('refused functions answer empty with SOR_NOTSUPPORTYETERR and send nothing to Keyward', async () => {
    const { bridge, sof, sent } = world()
    await bridge.connect()
    const before = sent().length
    for (const name of Object.keys(REFUSED) as (keyof typeof REFUSED)[]) {
      const fn = sof[name]
      const r = await fn('K1', '/etc/passwd', 'ZGF0YQ==')
      expect(r === '' || r === false, name).toBe(true)
      expect(sof.SOF_GetLastError(), name).toBe(SOR.NOTSUPPORTYETERR)
      expect(sof.keywardLastError()?.detail, name).toContain(name)
    }
    expect(sof.SOF_DecryptData).toBeTypeOf('function')
    expect(sent().length).toBe(before)
    // Nothing is both supported and refused.
    for (const s of SUPPORTED) expect(Object.keys(REFUSED)).not.toContain(s)
  })

  it('sign method: SHA-256 only; random bytes from the browser', async () => {
    const { sof } = world()
    expect(await sof.SOF_GetSignMethod()).toBe(SGD.SHA256_RSA)
    expect(await sof.SOF_SetSignMethod(SGD.SHA256_RSA)).toBe(SOR.OK)
    expect(await sof.SOF_SetSignMethod(SGD.SM3_SM2)).toBe(SOR.PARAMETERNOTSUPPORTEERR)
    expect(await sof.SOF_GenRandom(16)).toHaveLength(24)
    expect(await sof.SOF_GenRandom(0)).toBe('')
    expect(sof.SOF_GetLastError()).toBe(SOR.INDATALENERR)
  })

  it('installs the functions as globals for pages that call them so', () => {
    const { sof } = world()
    const g: Record<string, unknown> = {}
    installSofGlobals(g, sof)
    expect(g.SOF_GetUserList).toBe(sof.SOF_GetUserList)
    expect(g.SOF_DecryptData).toBeTypeOf('function')
    expect(g.keywardLastError).toBeUndefined()
  })
})
