import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import ChangePinDialog from '../src/components/ChangePinDialog.vue'
import { setLang } from '../src/i18n'
import { pin, pinInfo } from './samples'
import { flush, testRouter } from './helpers'

beforeEach(() => setLang('zh-CN'))
afterEach(() => clearMocks())

async function open(status = pin(), onChange?: (args: Record<string, unknown>) => unknown) {
  const calls: Record<string, unknown>[] = []
  mockIPC((cmd, args) => {
    if (cmd === 'pin_status') return pinInfo('A1', status)
    if (cmd === 'pin_change') {
      calls.push(args as Record<string, unknown>)
      return onChange ? onChange(args as Record<string, unknown>) : pin()
    }
  })
  const router = await testRouter('/cert/A1')
  const w = mount(ChangePinDialog, { props: { serial: 'A1' }, global: { plugins: [router] } })
  await flush()
  return { w, calls, router }
}

async function type(w: Awaited<ReturnType<typeof open>>['w'], old: string, next: string, again = next) {
  await w.find('[data-testid=old-pin]').setValue(old)
  await w.find('[data-testid=new-pin]').setValue(next)
  await w.find('[data-testid=new-pin-again]').setValue(again)
}

// The dialog's PIN fields: the inputs on screen, and the state behind them (which outlives
// the form once it gives way to the done note). `<script setup>` keeps that state out of
// `$data`; Vue Test Utils reads it through `vm`.
const FIELDS = ['oldPin', 'newPin', 'again'] as const

function expectNoPinKept(w: Awaited<ReturnType<typeof open>>['w'], pins: string[]) {
  const state = w.vm as unknown as Record<(typeof FIELDS)[number], unknown>
  for (const f of FIELDS) expect(state[f], f).toBe('')
  for (const input of w.findAll('input')) {
    const el = input.element as HTMLInputElement
    if (el.type !== 'checkbox') expect(el.value, el.dataset.testid).toBe('')
  }
  for (const p of pins) expect(w.html()).not.toContain(p)
}

describe('修改密码', () => {
  it('keeps the button off until every rule is met, then changes and clears the fields', async () => {
    const { w, calls } = await open()
    await type(w, 'Fixture#2026', 'weak')
    expect(w.find('[data-testid=pin-submit]').attributes('disabled')).toBeDefined()
    expect(w.find('[data-rule=upper]').classes()).not.toContain('ok')

    await type(w, 'Fixture#2026', 'Better#2027pin')
    expect(w.find('[data-testid=pin-submit]').attributes('disabled')).toBeUndefined()
    await w.find('form').trigger('submit')
    await flush()
    expect(calls).toEqual([
      { serial: 'A1', oldPin: 'Fixture#2026', newPin: 'Better#2027pin', newPinAgain: 'Better#2027pin', confirmFinalTry: false },
    ])
    expect(w.find('[data-testid=pin-done]').exists()).toBe(true)
    expectNoPinKept(w, ['Fixture#2026', 'Better#2027pin'])
    await w.find('.actions button.primary').trigger('click')
    expect(w.emitted('close')).toBeTruthy()
    expectNoPinKept(w, ['Fixture#2026', 'Better#2027pin'])
  })

  it('shows the tries left after a wrong PIN and empties the fields', async () => {
    const { w } = await open(pin(), () => {
      throw { code: 'pin_incorrect', message: '证书密码错误，已输错 1 次，再错 9 次将锁定。', pin: pin('count_low', 9) }
    })
    await type(w, 'Wrong#2026', 'Better#2027pin')
    await w.find('form').trigger('submit')
    await flush()
    expect(w.find('[data-testid=error]').text()).toContain('再错 9 次将锁定')
    expect(w.find('[data-testid=pin-state]').text()).toContain('再错 9 次将锁定')
    expect(w.find('[data-testid=pin-warn]').exists()).toBe(true)
    for (const id of ['old-pin', 'new-pin', 'new-pin-again']) {
      expect((w.find(`[data-testid=${id}]`).element as HTMLInputElement).value).toBe('')
    }
    expectNoPinKept(w, ['Wrong#2026', 'Better#2027pin'])
  })

  it('asks for explicit confirmation at the final try and offers 忘记密码 instead', async () => {
    const { w, calls } = await open(pin('final_try', 1))
    expect(w.find('[data-testid=pin-final]').text()).toContain('只剩最后一次机会')
    await type(w, 'Fixture#2026', 'Better#2027pin')
    expect(w.find('[data-testid=pin-submit]').attributes('disabled')).toBeDefined()
    await w.find('[data-testid=confirm-final]').setValue(true)
    await w.find('form').trigger('submit')
    await flush()
    expect(calls[0].confirmFinalTry).toBe(true)
  })

  it('sends a locked key straight to the unlock wizard', async () => {
    const { w, router } = await open(pin('locked', 0))
    await flush()
    await vi.waitFor(() => expect(router.currentRoute.value.fullPath).toBe('/unlock/A1'))
    expect(w.emitted('close')).toBeTruthy()
  })
})
