// The bridge's prompt in the window: what it shows of a page's request, and where the PIN
// goes (the one confirming call, then nowhere).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import BridgePrompt from '../src/components/BridgePrompt.vue'
import { prompts, resetBridge, routeFor } from '../src/bridge'
import { setLang } from '../src/i18n'
import type { Outcome, Prompt } from '../src/ipc'
import { pin } from './samples'
import { flush, testRouter } from './helpers'

beforeEach(() => setLang('zh-CN'))
afterEach(() => {
  clearMocks()
  resetBridge()
})

const origin = {
  origin: 'https://ggzy.gov.cn.evil.example.com',
  scheme: 'https://',
  prefix: 'ggzy.gov.cn.evil.',
  registrable: 'example.com',
  port: null,
}
const key = { serial: 'K1', organisation: '广州示例科技有限公司', credit_code: '91440101MA5DM00032' }

function confirm(over: Partial<Prompt & { kind: 'confirm' }> = {}): Prompt {
  return {
    id: 7,
    origin,
    expires_in_ms: 90_000,
    timeout_seconds: 120,
    kind: 'confirm',
    key,
    action: { kind: 'sign_message', text: '同意投标\n总价 100 元', bytes: 22, sha256_hex: '00'.repeat(32) },
    pin: pin(),
    ...over,
  } as Prompt
}

async function show(p: Prompt, outcome: Outcome = { outcome: 'done' }) {
  const calls: [string, Record<string, unknown>][] = []
  mockIPC((cmd, args) => {
    calls.push([cmd, args as Record<string, unknown>])
    if (cmd === 'bridge_confirm') return outcome
    return null
  })
  const router = await testRouter('/')
  const w = mount(BridgePrompt, { global: { plugins: [router] } })
  prompts.splice(0, prompts.length, p)
  await flush()
  return { w, calls, router }
}

describe('the bridge prompt', () => {
  it('shows the registrable domain in bold, not the look-alike in front of it', async () => {
    const { w } = await show({ id: 1, origin, expires_in_ms: 60_000, timeout_seconds: 120, kind: 'consent' } as Prompt)
    expect(w.find('[data-testid=bridge-registrable]').text()).toBe('example.com')
    expect(w.find('[data-testid=bridge-origin]').text()).toBe('https://ggzy.gov.cn.evil.example.com')
    expect(w.text()).toContain('允许一次')
    expect(w.text()).toContain('始终允许')
    expect(w.text()).toContain('拒绝')
    expect(w.text()).toContain('2 分钟')
  })

  it('shows the text to sign word for word, and sends the PIN once, then forgets it', async () => {
    const { w, calls } = await show(confirm())
    expect(w.find('[data-testid=bridge-text]').text()).toBe('同意投标\n总价 100 元')
    expect(w.find('[data-testid=bridge-key]').text()).toContain('广州示例科技有限公司')
    expect(w.find('[data-testid=bridge-key]').text()).toContain('K1')
    await w.find('[data-testid=bridge-pin]').setValue('Fixture#2026')
    await w.find('form').trigger('submit')
    await flush()
    const sent = calls.filter(([c]) => c === 'bridge_confirm')
    expect(sent).toHaveLength(1)
    expect(sent[0][1]).toMatchObject({ id: 7, pin: 'Fixture#2026', confirmFinalTry: false })
    // The PIN went in that call only, and the field and state no longer hold it.
    expect(calls.filter(([, a]) => JSON.stringify(a ?? {}).includes('Fixture#2026'))).toHaveLength(1)
    expect((w.vm as unknown as { pin: string }).pin).toBe('')
    expect(w.find('[data-testid=bridge-result]').attributes('data-outcome')).toBe('done')
  })

  it('holds the final try back until confirmed and offers 忘记密码', async () => {
    const { w, calls, router } = await show(confirm({ pin: pin('final_try', 1) }))
    await w.find('[data-testid=bridge-pin]').setValue('Fixture#2026')
    expect(w.find('[data-testid=bridge-confirm]').attributes('disabled')).toBeDefined()
    await w.find('form').trigger('submit')
    await flush()
    expect(calls.some(([c]) => c === 'bridge_confirm')).toBe(false)
    await w.find('[data-testid=bridge-confirm-final]').setValue(true)
    expect(w.find('[data-testid=bridge-confirm]').attributes('disabled')).toBeUndefined()
    await w.find('[data-testid=bridge-forgot]').trigger('click')
    await flush()
    expect(calls.find(([c]) => c === 'bridge_answer')?.[1]).toMatchObject({ id: 7, reply: 'cancel' })
    // 忘记密码 is a chunk of its own: the navigation ends once it has loaded.
    await vi.waitFor(() => expect(router.currentRoute.value.fullPath).toBe('/unlock/K1'))
  })

  it('reports a wrong PIN with the tries left', async () => {
    const { w } = await show(confirm(), { outcome: 'pin_incorrect', pin: pin('count_low', 9) })
    await w.find('[data-testid=bridge-pin]').setValue('Wrong#1')
    await w.find('form').trigger('submit')
    await flush()
    expect(w.find('[data-testid=bridge-result]').attributes('data-outcome')).toBe('pin_incorrect')
    expect(w.find('[data-testid=bridge-result]').text()).toContain('9')
  })

  it('routes a page’s keyward.open and a link to the screen for the key', () => {
    expect(routeFor({ screen: 'renew', key: 'K1' })).toBe('/renew?serial=K1')
    expect(routeFor({ screen: 'unlock', key: 'K 1' })).toBe('/unlock/K%201')
    expect(routeFor({ screen: 'pin', key: 'K1' })).toBe('/cert/K1?change_pin=1')
    expect(routeFor({ screen: 'home', key: null })).toBe('/')
  })
})

describe('设置 · 网页调用', () => {
  async function settings(info: unknown, onRevoke?: (origin: string) => unknown) {
    const calls: string[] = []
    mockIPC((cmd, args) => {
      calls.push(cmd)
      if (cmd === 'bridge_status') return info
      if (cmd === 'bridge_revoke') return onRevoke?.((args as { origin: string }).origin)
      return null
    })
    const { default: BridgeSettings } = await import('../src/components/BridgeSettings.vue')
    const w = mount(BridgeSettings)
    await flush()
    await flush()
    return { w, calls }
  }

  it('names another program holding the port, never a silent failure', async () => {
    const { w } = await settings({ status: { state: 'port_busy', addr: '127.0.0.1:28231', reason: 'in use' }, grants: [] })
    const status = w.find('[data-testid=bridge-status]')
    expect(status.attributes('data-state')).toBe('port_busy')
    expect(status.text()).toContain('127.0.0.1:28231')
    expect(status.text()).toContain('其他程序占用')
  })

  it('names another Keyward', async () => {
    const { w } = await settings({ status: { state: 'other_keyward', addr: '127.0.0.1:28231', version: '0.1.0' }, grants: [] })
    expect(w.find('[data-testid=bridge-status]').text()).toContain('另一个 Keyward')
  })

  it('lists a grant with when it was allowed and last used, and revokes it', async () => {
    const grant = {
      origin: { origin: 'https://www.ggzy.gov.cn', scheme: 'https://', prefix: 'www.', registrable: 'ggzy.gov.cn', port: null },
      granted_at: '2026-11-30T08:00:00Z',
      last_used: '2026-12-01T09:30:00Z',
    }
    const revoked: string[] = []
    const { w } = await settings({ status: { state: 'listening', url: 'ws://127.0.0.1:28231/' }, grants: [grant] }, (o) => {
      revoked.push(o)
      return { status: { state: 'listening', url: 'ws://127.0.0.1:28231/' }, grants: [] }
    })
    const row = w.find('[data-testid=bridge-grant]')
    expect(row.find('[data-testid=bridge-registrable]').text()).toBe('ggzy.gov.cn')
    expect(row.text()).toContain('允许时间')
    expect(row.text()).toContain('最近使用')
    await row.find('[data-testid=bridge-revoke]').trigger('click')
    await flush()
    expect(revoked).toEqual(['https://www.ggzy.gov.cn'])
    expect(w.find('[data-testid=bridge-grants-none]').exists()).toBe(true)
    expect(w.find('[data-testid=bridge-revoked]').text()).toContain('https://www.ggzy.gov.cn')
  })
})
