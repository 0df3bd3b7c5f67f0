import { beforeEach, describe, expect, it } from 'vitest'
import { lang, setLang, storedLang, t } from '../src/i18n'

beforeEach(async () => {
  await setLang('zh-CN')
  localStorage.clear()
})

describe('languages', () => {
  it('switches to a language once its messages have loaded, never half-way', async () => {
    const switching = setLang('en')
    // The English chunk is still loading: the window keeps speaking Chinese meanwhile.
    expect(lang.value).toBe('zh-CN')
    expect(t('nav.home')).toBe('主页')
    await switching
    expect(lang.value).toBe('en')
    expect(document.documentElement.lang).toBe('en')
    expect(t('nav.home')).toBe('Home')
    await setLang('zh-TW')
    expect(t('nav.renew')).toBe('憑證續期')
  })

  it('ends in the language asked for last, whatever loads first', async () => {
    const a = setLang('zh-TW')
    const b = setLang('zh-CN')
    await Promise.all([a, b])
    expect(lang.value).toBe('zh-CN')
    expect(t('nav.home')).toBe('主页')
  })

  it('remembers the language for the next start, and ignores what it does not know', async () => {
    expect(storedLang()).toBeNull()
    await setLang('en')
    expect(storedLang()).toBe('en')
    localStorage.setItem('keyward.lang', 'fr')
    expect(storedLang()).toBeNull()
  })
})
