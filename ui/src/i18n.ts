// A small i18n: three languages, Simplified Chinese first and the fallback. `t('a.b', {n})`
// reads a message and fills `{n}`; `tl('flows.renew')` reads a list.

import { ref } from 'vue'
import zhCN from './locales/zh-CN'
import zhTW from './locales/zh-TW'
import en from './locales/en'
import type { Lang } from './ipc'

type Widen<T> = T extends string
  ? string
  : T extends readonly string[]
    ? string[]
    : { [K in keyof T]: Widen<T[K]> }
export type Messages = Widen<typeof zhCN>

const catalogs: Record<Lang, Messages> = { 'zh-CN': zhCN, 'zh-TW': zhTW, en }

export const LANGS: { tag: Lang; name: string }[] = [
  { tag: 'zh-CN', name: '简体中文' },
  { tag: 'zh-TW', name: '繁體中文' },
  { tag: 'en', name: 'English' },
]

export const lang = ref<Lang>('zh-CN')

export function setLang(l: Lang) {
  lang.value = l
  document.documentElement.lang = l
}

function lookup(catalog: Messages, key: string): unknown {
  return key.split('.').reduce<unknown>((node, part) => {
    if (node && typeof node === 'object') return (node as Record<string, unknown>)[part]
    return undefined
  }, catalog)
}

export function t(key: string, params: Record<string, string | number> = {}): string {
  const found = lookup(catalogs[lang.value], key) ?? lookup(zhCN, key)
  if (typeof found !== 'string') return key
  return found.replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? `{${name}}`))
}

export function tl(key: string): string[] {
  const found = lookup(catalogs[lang.value], key) ?? lookup(zhCN, key)
  return Array.isArray(found) ? (found as string[]) : []
}
