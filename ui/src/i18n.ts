// A small i18n: three languages, Simplified Chinese first and the fallback. `t('a.b', {n})`
// reads a message and fills `{n}`; `tl('flows.renew')` reads a list.
//
// Simplified Chinese is in the first bundle; Traditional Chinese and English are chunks of
// their own, loaded when chosen, so a start in the default language neither downloads nor
// parses the other two. The language of the last start is kept in the page's storage, so
// the window opens in it at once, without waiting for the settings.

import { ref, shallowReactive } from 'vue'
import zhCN from './locales/zh-CN'
import type { Lang } from './ipc'

type Widen<T> = T extends string
  ? string
  : T extends readonly string[]
    ? string[]
    : { [K in keyof T]: Widen<T[K]> }
export type Messages = Widen<typeof zhCN>

const loaders: Record<Lang, () => Promise<Messages>> = {
  'zh-CN': async () => zhCN,
  'zh-TW': async () => (await import('./locales/zh-TW')).default,
  en: async () => (await import('./locales/en')).default,
}
const catalogs = shallowReactive<Partial<Record<Lang, Messages>>>({ 'zh-CN': zhCN })

export const LANGS: { tag: Lang; name: string }[] = [
  { tag: 'zh-CN', name: '简体中文' },
  { tag: 'zh-TW', name: '繁體中文' },
  { tag: 'en', name: 'English' },
]

export const lang = ref<Lang>('zh-CN')

const STORED = 'keyward.lang'

/** The language the window last showed, if the page's storage has a known one. */
export function storedLang(): Lang | null {
  try {
    const l = localStorage.getItem(STORED)
    return LANGS.some((x) => x.tag === l) ? (l as Lang) : null
  } catch {
    return null
  }
}

let asked = 0

/**
 * Shows the window in `l`. A language already loaded switches at once (the promise is
 * already resolved); another switches once its messages have come, and only if no other
 * language was asked for meanwhile. A language whose chunk cannot load leaves the window as
 * it was.
 */
export function setLang(l: Lang): Promise<void> {
  const mine = ++asked
  const apply = () => {
    if (mine !== asked) return
    lang.value = l
    document.documentElement.lang = l
    try {
      localStorage.setItem(STORED, l)
    } catch {
      // Storage refused (a private profile): the next start waits for the settings instead.
    }
  }
  if (catalogs[l]) {
    apply()
    return Promise.resolve()
  }
  return loaders[l]().then(
    (m) => {
      catalogs[l] = m
      apply()
    },
    () => undefined,
  )
}

function lookup(catalog: Messages, key: string): unknown {
  return key.split('.').reduce<unknown>((node, part) => {
    if (node && typeof node === 'object') return (node as Record<string, unknown>)[part]
    return undefined
  }, catalog)
}

export function t(key: string, params: Record<string, string | number> = {}): string {
  const found = lookup(catalogs[lang.value] ?? zhCN, key) ?? lookup(zhCN, key)
  if (typeof found !== 'string') return key
  return found.replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? `{${name}}`))
}

export function tl(key: string): string[] {
  const found = lookup(catalogs[lang.value] ?? zhCN, key) ?? lookup(zhCN, key)
  return Array.isArray(found) ? (found as string[]) : []
}
