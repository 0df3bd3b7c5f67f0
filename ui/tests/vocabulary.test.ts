import { describe, expect, it } from 'vitest'
import zhCN from '../src/locales/zh-CN'
import zhTW from '../src/locales/zh-TW'
import en from '../src/locales/en'

// One vocabulary for the operator, over every string the window shows (the flows' own
// messages are held to the same rules by a test in keyward-flows):
// - one name for the key: USB Key (no 介质, UKey, U盾, Key 盘, "USB key" in Chinese text);
// - 证书密码 / 憑證密碼 for the PIN: no bare "PIN" and no 口令 in Chinese text. The key's
//   administrator code never reaches the operator (unlocking goes through the CA), so
//   there is no exception for it;
// - full-width punctuation in Chinese text: no ASCII , . : ; ! ? ( ) beside a Chinese
//   character (a file name's ".pem", "1.5 毫米" and "https://" are not beside one);
// - none of the phrases the guides' words replaced;
// - zh-CN, zh-TW and en with the same keys;
// - no template glues ASCII punctuation to a translated label (`{{ t('x') }}:`): the
//   colon is the language's own, `app.colon`.

type Tree = { [k: string]: string | readonly string[] | Tree }

function flatten(tree: Tree, prefix = ''): Map<string, string> {
  const out = new Map<string, string>()
  for (const [k, v] of Object.entries(tree)) {
    const key = prefix ? `${prefix}.${k}` : k
    if (typeof v === 'string') out.set(key, v)
    else if (Array.isArray(v)) v.forEach((s, i) => out.set(`${key}[${i}]`, s))
    else for (const [kk, vv] of flatten(v as Tree, key)) out.set(kk, vv)
  }
  return out
}

const locales = { 'zh-CN': flatten(zhCN as Tree), 'zh-TW': flatten(zhTW as Tree), en: flatten(en as Tree) }
const chinese = { 'zh-CN': locales['zh-CN'], 'zh-TW': locales['zh-TW'] }

const CJK = /[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]/
const KEY_NAMES = /介质|介質|UKey|U盾|Key ?盘|Key ?盤|USB ?key(?![a-z])|USBKey/
const PIN_WORDS = /(?<![A-Za-z])PIN(?![A-Za-z])|口令/
const OLD_PHRASES = ['需重新申请新证书', '需重新申請新憑證', '已输错过密码', '已輸錯過密碼', '天后开放', '天後開放', '经办人本人自动审核', '經辦人本人自動審核', '已绑定本证书', '已綁定本憑證', 'CA 记录激活时间', 'CA 記錄啟用時間', 'SO PIN']

/** ASCII punctuation with a Chinese character on either side. */
function halfWidth(s: string): string[] {
  const found: string[] = []
  for (let i = 0; i < s.length; i++) {
    if (!',.:;!?()'.includes(s[i])) continue
    const before = s[i - 1] ?? ''
    const after = s[i + 1] ?? ''
    // A file name's extension, a decimal, a web address: the dot or colon runs on.
    if ((s[i] === '.' && /[A-Za-z0-9]/.test(after)) || (s[i] === ':' && after === '/')) continue
    if (CJK.test(before) || CJK.test(after)) found.push(s.slice(Math.max(0, i - 6), i + 7))
  }
  return found
}

function offenders(strings: Map<string, string>, test: (s: string) => boolean): string[] {
  return [...strings].filter(([, s]) => test(s)).map(([k, s]) => `${k}: ${s}`)
}

describe('the vocabulary', () => {
  it('gives zh-CN, zh-TW and en the same keys', () => {
    const keys = (m: Map<string, string>) => [...m.keys()].sort()
    expect(keys(locales['zh-TW'])).toEqual(keys(locales['zh-CN']))
    expect(keys(locales.en)).toEqual(keys(locales['zh-CN']))
  })

  for (const [lang, strings] of Object.entries(chinese)) {
    it(`names the key USB Key in ${lang}`, () => {
      expect(offenders(strings, (s) => KEY_NAMES.test(s))).toEqual([])
    })

    it(`calls the PIN 证书密码 in ${lang}`, () => {
      expect(offenders(strings, (s) => PIN_WORDS.test(s))).toEqual([])
    })

    it(`uses full-width punctuation in ${lang}`, () => {
      const found = [...strings].flatMap(([k, s]) => halfWidth(s).map((at) => `${k}: …${at}…`))
      expect(found).toEqual([])
    })
  }

  it('keeps none of the replaced phrases, in any language', () => {
    for (const strings of Object.values(locales)) {
      expect(offenders(strings, (s) => OLD_PHRASES.some((p) => s.includes(p)))).toEqual([])
    }
  })

  it('lets no template glue ASCII punctuation to a translated label', () => {
    // Every template's source, as Vite reads it.
    const sources = import.meta.glob('../src/**/*.vue', { query: '?raw', import: 'default', eager: true }) as Record<string, string>
    expect(Object.keys(sources).length).toBeGreaterThan(10)
    const GLUED = /\{\{\s*t\([^}]*\)\s*\}\}\s*[:;,]/
    const found = Object.entries(sources).flatMap(([f, text]) =>
      text.split('\n').flatMap((line, i) => (GLUED.test(line) ? [`${f}:${i + 1}: ${line.trim()}`] : [])),
    )
    expect(found).toEqual([])
    expect(GLUED.test("{{ t('home.pin') }}: <strong>")).toBe(true)
    expect(GLUED.test("{{ t('home.pin') }}{{ t('app.colon') }}<strong>")).toBe(false)
  })

  it('would catch what it looks for', () => {
    // The rules themselves, on strings that break them.
    expect(KEY_NAMES.test('请插入 UKey')).toBe(true)
    expect(KEY_NAMES.test('请插入 USB key')).toBe(true)
    expect(KEY_NAMES.test('请插入 USB Key')).toBe(false)
    expect(PIN_WORDS.test('证书密码（PIN）')).toBe(true)
    expect(PIN_WORDS.test('PKCS#11 URI')).toBe(false)
    expect(halfWidth('已过期,请续期')).toHaveLength(1)
    expect(halfWidth('证书(旧)')).toHaveLength(2)
    expect(halfWidth('导出为 .pem 文件')).toEqual([])
    expect(halfWidth('距左边 1.5 毫米')).toEqual([])
    expect(halfWidth('文档/投标书.pdf')).toEqual([])
    expect(halfWidth('已保存。')).toEqual([])
    expect(halfWidth('已保存.')).toHaveLength(1)
  })
})
