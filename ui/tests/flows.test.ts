// The workflow pages through the mocked shell: what each sends, what it shows, and that no
// PIN stays in a field after a call.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import ActivateView from '../src/views/ActivateView.vue'
import RenewView from '../src/views/RenewView.vue'
import SealView from '../src/views/SealView.vue'
import BusinessTimeline from '../src/components/BusinessTimeline.vue'
import ProgressView from '../src/views/ProgressView.vue'
import UnlockView from '../src/views/UnlockView.vue'
import StepProgress from '../src/components/StepProgress.vue'
import { setLang } from '../src/i18n'
import { remove, resetKeys, upsert } from '../src/keys'
import { ARGS_HEADER, type Business, type CertSummary, type RenewState } from '../src/ipc'
import { key, pin, pinInfo } from './samples'
import { flush, testRouter } from './helpers'

beforeEach(() => setLang('zh-CN'))
afterEach(() => {
  resetKeys()
  clearMocks()
})

const GOOD = 'Better#2027pin'

// No PIN stays behind after a call: not in an input on the page, not in the page's own state
// behind the fields (`<script setup>` state, which Vue Test Utils reads through `vm`, and
// which outlives a form that gave way to a done note), not anywhere in the markup.
function expectNoPinKept(w: ReturnType<typeof mount>, fields: string[], pins: string[]) {
  const state = w.vm as unknown as Record<string, unknown>
  for (const f of fields) expect(state[f], f).toBe('')
  for (const input of w.findAll('input')) {
    const el = input.element as HTMLInputElement
    for (const p of pins) expect(el.value, el.dataset.testid).not.toBe(p)
  }
  for (const p of pins) expect(w.html()).not.toContain(p)
}

function business(kind: string, state: string, fee = 0): Business {
  return {
    id: 'B1',
    kind,
    state,
    key_serial: 'A1',
    uscc: '91440101MA59ABCDEX',
    fee_fen: fee,
    created_at: '2026-11-01T08:00:00Z',
    updated_at: '2026-11-01T09:00:00Z',
    timeline: [
      { at: '2026-11-01T08:00:00Z', state: 'submitted', note: '' },
      { at: '2026-11-01T09:00:00Z', state, note: '' },
    ],
  }
}

type Calls = { cmd: string; args: Record<string, unknown> }[]

function shell(answers: Record<string, (args: Record<string, unknown>) => unknown>, status = pin()): Calls {
  const calls: Calls = []
  mockIPC((cmd, raw) => {
    const args = (raw ?? {}) as Record<string, unknown>
    calls.push({ cmd, args })
    if (cmd === 'pin_status') return pinInfo('A1', status)
    const answer = answers[cmd]
    if (!answer) throw { code: 'internal', message: `unexpected ${cmd}` }
    return answer(args)
  })
  // Tauri's mock drops the call's options: a file command's arguments travel in a header,
  // so they are decoded here, with the raw body beside them as `body`.
  const internals = (window as unknown as { __TAURI_INTERNALS__: { invoke: Invoke } }).__TAURI_INTERNALS__
  const mocked = internals.invoke
  internals.invoke = (cmd, args, options) => {
    const header = options?.headers?.[ARGS_HEADER]
    if (!header) return mocked(cmd, args, options)
    return mocked(cmd, { ...JSON.parse(decodeURIComponent(header)), body: args }, options)
  }
  return calls
}

type Invoke = (cmd: string, args: unknown, options?: { headers?: Record<string, string> }) => Promise<unknown>

async function page(component: unknown, path: string) {
  const router = await testRouter(path)
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const w = mount(component as any, { global: { plugins: [router] } })
  await flush()
  await flush()
  return { w, router }
}

const CODE_SENT = {
  phone_masked: '138****0001',
  reference: '38',
  expires_at: '2026-11-21T10:10:00Z',
  resend_after: '2026-11-21T10:01:00Z',
}

describe('激活证书', () => {
  it('asks for the code first, says where it went and its 编号, activates and empties the fields', async () => {
    upsert(key('A1', { next: { action: 'activate' } }))
    const calls = shell({
      flow_pending: () => [],
      activate_send_code: () => CODE_SENT,
      activate: () => ({ state: 'active' }),
      token_list: () => [key('A1')],
      bridge_status: () => ({ status: { state: 'listening', url: 'ws://127.0.0.1:26080' }, grants: [] }),
    })
    const { w } = await page(ActivateView, '/activate?serial=A1')
    expect(w.find('[data-testid=wizard-steps] [aria-current=step]').text()).toContain('获取短信验证码')
    // Nothing to type before a code was asked for from this computer.
    expect(w.find('[data-testid=sms-code]').exists()).toBe(false)
    expect(w.find('[data-testid=new-pin]').exists()).toBe(false)
    expect(w.find('[data-testid=activate-submit]').exists()).toBe(false)
    expect(w.find('[data-testid=activate-code-first]').text()).toContain('请先获取验证码')
    expect(w.find('[data-testid=send-code]').text()).toBe('获取验证码')

    await w.find('[data-testid=send-code]').trigger('click')
    await flush()
    expect(calls.filter((c) => c.cmd === 'activate_send_code').map((c) => c.args)).toEqual([{ serial: 'A1' }])
    const sent = w.find('[data-testid=code-sent]')
    expect(sent.text()).toContain('138****0001')
    expect(sent.text()).toContain('短信编号 38')
    expect(sent.text()).toContain('请输入编号为 38 的短信中的验证码')
    expect(w.find('[data-testid=sms]').text()).toContain('短信验证码（编号 38）')
    expect(w.find('[data-testid=send-code]').text()).toBe('重新获取验证码')
    expect(w.find('[data-testid=wizard-steps] [aria-current=step]').text()).toContain('输入验证码')

    await w.find('[data-testid=sms-code]').setValue('123456')
    await w.find('[data-testid=new-pin]').setValue('weak')
    await w.find('[data-testid=new-pin-again]').setValue('weak')
    expect(w.find('[data-testid=activate-submit]').attributes('disabled')).toBeDefined()
    await w.find('[data-testid=new-pin]').setValue(GOOD)
    await w.find('[data-testid=new-pin-again]').setValue(GOOD)
    expect(w.find('[data-testid=activate-submit]').attributes('disabled')).toBeUndefined()
    await w.find('form').trigger('submit')
    await flush()
    const args = calls.find((c) => c.cmd === 'activate')!.args
    expect(args).toMatchObject({ serial: 'A1', code: '123456', newPin: GOOD, newPinAgain: GOOD })
    expect(args.progress).toBeDefined()
    expect(w.find('[data-testid=activate-done]').text()).toContain('激活完成')
    // The guides' next step, offered here: 绑定 on the portal, which reaches the key through
    // the bridge, ready.
    await flush()
    const bind = w.find('[data-testid=bind-next]')
    expect(bind.find('[data-testid=bind-step]').text()).toContain('登录采购平台【CA 管理】-【绑定】')
    expect(bind.find('[data-testid=bind-step]').text()).toContain('广州示例科技有限公司')
    expect(bind.find('[data-testid=bind-bridge]').attributes('data-state')).toBe('listening')
    expect(bind.find('[data-testid=bind-bridge]').text()).toContain('浏览器连接已就绪')
    expect(bind.find('[data-testid=bind-open]').exists()).toBe(false)
    expectNoPinKept(w, ['newPin', 'again'], [GOOD])
  })

  it('holds a new code back until the CA allows one, and says until when the code works', async () => {
    upsert(key('A1'))
    const at = (s: number) => new Date(Date.now() + s * 1000).toISOString()
    shell({ flow_pending: () => [], activate_send_code: () => ({ ...CODE_SENT, expires_at: at(600), resend_after: at(45) }) })
    const { w } = await page(ActivateView, '/activate')
    await w.find('[data-testid=send-code]').trigger('click')
    await flush()
    const again = w.find('[data-testid=send-code]')
    expect(again.attributes('disabled')).toBeDefined()
    expect(again.text()).toMatch(/^4[0-5] 秒后可重新获取$/)
    expect(w.find('[data-testid=code-sent]').text()).toMatch(/\d\d:\d\d 前有效/)
  })

  it('names no time when this computer’s clock and the CA’s disagree', async () => {
    upsert(key('A1'))
    // CODE_SENT's instants are days in the past by this computer's clock.
    shell({ flow_pending: () => [], activate_send_code: () => CODE_SENT })
    const { w } = await page(ActivateView, '/activate')
    await w.find('[data-testid=send-code]').trigger('click')
    await flush()
    expect(w.find('[data-testid=code-sent]').text()).toContain('请在短信写明的有效期内输入')
    expect(w.find('[data-testid=code-sent]').text()).not.toContain('前有效')
    expect(w.find('[data-testid=code-expired]').exists()).toBe(false)
    expect(w.find('[data-testid=send-code]').attributes('disabled')).toBeUndefined()
  })

  it('shows the CA’s error for a wrong code and keeps no PIN', async () => {
    upsert(key('A1'))
    shell({
      flow_pending: () => [],
      activate_send_code: () => CODE_SENT,
      activate: () => {
        throw { code: 'ca_code_invalid', message: '验证码错误，请核对短信后重新输入。' }
      },
    })
    const { w } = await page(ActivateView, '/activate')
    await w.find('[data-testid=send-code]').trigger('click')
    await flush()
    await w.find('[data-testid=sms-code]').setValue('000000')
    await w.find('[data-testid=new-pin]').setValue(GOOD)
    await w.find('[data-testid=new-pin-again]').setValue(GOOD)
    await w.find('form').trigger('submit')
    await flush()
    expect(w.find('[data-testid=error][data-code=ca_code_invalid]').exists()).toBe(true)
    expect((w.find('[data-testid=new-pin]').element as HTMLInputElement).value).toBe('')
    // The code and its 编号 stay: the operator may correct a typo.
    expect(w.find('[data-testid=code-sent]').exists()).toBe(true)
    expect((w.find('[data-testid=new-pin-again]').element as HTMLInputElement).value).toBe('')
    expectNoPinKept(w, ['newPin', 'again'], [GOOD])
  })

  it('offers the field after an earlier request here; a code never asked for sends it back to asking', async () => {
    upsert(key('A1'))
    const calls = shell({
      flow_pending: () => ['activate'],
      activate: () => {
        throw { code: 'code_not_requested', message: '请先点击“获取验证码”，再输入收到的短信验证码。' }
      },
    })
    const { w } = await page(ActivateView, '/activate')
    expect(w.find('[data-testid=activate-resumable]').text()).toContain('10 分钟')
    await w.find('[data-testid=sms-code]').setValue('123456')
    await w.find('[data-testid=new-pin]').setValue(GOOD)
    await w.find('[data-testid=new-pin-again]').setValue(GOOD)
    await w.find('form').trigger('submit')
    await flush()
    expect(calls.find((c) => c.cmd === 'activate')!.args).toMatchObject({ code: '123456' })
    expect(w.find('[data-testid=error][data-code=code_not_requested]').text()).toContain('获取验证码')
    expect(w.find('[data-testid=sms-code]').exists()).toBe(false)
    expect(w.find('[data-testid=new-pin]').exists()).toBe(false)
    expect(w.find('[data-testid=send-code]').text()).toBe('获取验证码')
  })
})

function renewState(over: Partial<RenewState> = {}): RenewState {
  const certificate = key('A1').certificate as CertSummary
  return {
    certificate: { ...certificate, days_left: 40, renewal: { status: 'open', days_left: 40 } },
    pending: null,
    business: null,
    fee_per_year_fen: 20000,
    ...over,
  }
}

describe('证书续期', () => {
  it('says when the window opens, and that an expired certificate needs a new application', async () => {
    upsert(key('A1'))
    const certificate = key('A1').certificate as CertSummary
    shell({ renew_status: () => renewState({ certificate }) })
    const { w } = await page(RenewView, '/renew')
    expect(w.find('[data-testid=renew-eligibility]').text()).toContain('245 天后')
    expect(w.find('[data-testid=renew-apply-form]').exists()).toBe(false)

    clearMocks()
    shell({
      renew_status: () =>
        renewState({ certificate: { ...certificate, days_left: -10, renewal: { status: 'expired' } } }),
    })
    const again = await page(RenewView, '/renew')
    const said = again.w.find('[data-testid=renew-eligibility]').text()
    expect(said).toContain('证书已过期，需按【新申请】重新办理')
    expect(said).toContain('已过期 10 天')
    expect(said).not.toContain('还有')
    expect(said).not.toContain('-10')
    // No renewal steps pretend there is a way forward.
    expect(again.w.find('.wizard-steps, [data-testid=wizard-steps]').exists()).toBe(false)
  })

  it('applies with years, fee and invoice, signed with the PIN; the PIN field is emptied', async () => {
    upsert(key('A1'))
    const calls = shell({
      renew_status: () => renewState(),
      renew_apply: () => business('renewal', 'awaiting_payment', 60000),
    })
    const { w } = await page(RenewView, '/renew')
    await w.find('[data-testid=renew-years]').setValue(3)
    expect(w.find('[data-testid=renew-fee]').text()).toContain('600 元')
    await w.find('[data-testid=invoice-title]').setValue('广州示例科技有限公司')
    await w.find('[data-testid=invoice-email]').setValue('caiwu@example.cn')
    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    await w.find('[data-testid=renew-apply-form]').trigger('submit')
    await flush()
    expect(calls.find((c) => c.cmd === 'renew_apply')!.args).toMatchObject({
      serial: 'A1',
      years: 3,
      invoiceTitle: '广州示例科技有限公司',
      email: 'caiwu@example.cn',
      pin: 'Old#Pin2026',
      confirmFinalTry: false,
    })
    // The application form stays up (the renewal now waits for payment): its PIN field is empty.
    expect((w.find('[data-testid=pin]').element as HTMLInputElement).value).toBe('')
    expectNoPinKept(w, ['pin'], ['Old#Pin2026'])
  })

  it('confirms the order before paying, then installs with a progress channel; an interrupted install is offered as resume', async () => {
    upsert(key('A1'))
    let paid = false
    const calls = shell({
      renew_status: () =>
        renewState({
          pending: { business_id: 'B1', old_id: '01', step: paid ? 'generating' : 'applied' },
          business: business('renewal', paid ? 'paid' : 'awaiting_payment', 20000),
        }),
      renew_pay: () => ((paid = true), { payment_id: 'P1', business_id: 'B1', amount_fen: 20000, status: 'paid', pay_url: '' }),
      renew_install: () => ({ ...key('A1').certificate, not_after: '2028-01-01T00:00:00Z' }),
      token_list: () => [key('A1')],
      bridge_status: () => ({
        status: { state: 'listening', url: 'ws://127.0.0.1:26080' },
        grants: [
          {
            origin: { origin: 'https://ebid.example.cn', scheme: 'https', prefix: 'ebid.', registrable: 'example.cn', port: null },
            granted_at: '2026-11-01T00:00:00Z',
            last_used: '2026-11-02T00:00:00Z',
          },
        ],
      }),
      portal_open: () => null,
    })
    const { w } = await page(RenewView, '/renew')
    const order = w.find('[data-testid=renew-pay]')
    expect(order.find('[data-testid=confirm-company]').text()).toBe('广州示例科技有限公司')
    expect(order.find('[data-testid=confirm-years]').text()).toBe('1 年')
    expect(order.find('[data-testid=confirm-fee]').text()).toBe('200 元')
    // The current expiry (2027-01-01 00:00 UTC) plus a year, as a local date.
    const local = new Date('2028-01-01T00:00:00Z')
    const want = `${local.getFullYear()}-${String(local.getMonth() + 1).padStart(2, '0')}-${String(local.getDate()).padStart(2, '0')}`
    expect(order.find('[data-testid=confirm-expiry]').text()).toBe(want)
    const notes = order.find('[data-testid=renew-confirm-notes]').text()
    expect(notes).toContain('电子发票 1–2 个工作日内推送')
    expect(notes).toContain('支付后不能退款')
    // The pay button says what it costs, never the sandbox; it waits for the check box.
    const button = w.find('[data-testid=renew-pay-button]')
    expect(button.text()).toBe('确认支付 200 元')
    expect(w.html()).not.toContain('沙箱')
    expect(button.attributes('disabled')).toBeDefined()
    await button.trigger('click')
    await flush()
    expect(calls.some((c) => c.cmd === 'renew_pay')).toBe(false)
    await w.find('[data-testid=renew-confirm-check]').setValue(true)
    expect(button.attributes('disabled')).toBeUndefined()
    await w.find('[data-testid=renew-pay-button]').trigger('click')
    await flush()
    await flush()
    expect(w.find('[data-testid=renew-resume]').exists()).toBe(true)
    expect(w.find('[data-testid=renew-install-button]').text()).toBe('继续安装')
    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    await w.find('[data-testid=renew-install]').trigger('submit')
    await flush()
    const args = calls.find((c) => c.cmd === 'renew_install')!.args
    expect(args).toMatchObject({ serial: 'A1', pin: 'Old#Pin2026', confirmFinalTry: false })
    expect(args.progress).toBeDefined()
    expect(w.find('[data-testid=renew-done]').text()).toContain('2028')
    // After a renewal the key is bound again on the portal: the one Keyward knows is offered.
    await flush()
    expect(w.find('[data-testid=bind-step]').text()).toContain('【CA 管理】-【绑定】')
    await w.find('[data-testid=bind-open]').trigger('click')
    await flush()
    expect(calls.filter((c) => c.cmd === 'portal_open').map((c) => c.args)).toEqual([{ origin: 'https://ebid.example.cn' }])
  })

  it('repeats the invoice details of the application in the confirmation', async () => {
    upsert(key('A1'))
    let applied = false
    shell({
      renew_status: () =>
        applied
          ? renewState({ pending: { business_id: 'B1', old_id: '01', step: 'applied' }, business: business('renewal', 'awaiting_payment', 60000) })
          : renewState(),
      renew_apply: () => ((applied = true), business('renewal', 'awaiting_payment', 60000)),
    })
    const { w } = await page(RenewView, '/renew')
    await w.find('[data-testid=renew-years]').setValue(3)
    await w.find('[data-testid=invoice-title]').setValue('广州示例科技有限公司')
    await w.find('[data-testid=invoice-email]').setValue('caiwu@example.cn')
    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    await w.find('[data-testid=renew-apply-form]').trigger('submit')
    await flush()
    await flush()
    expect(w.find('[data-testid=confirm-years]').text()).toBe('3 年')
    expect(w.find('[data-testid=confirm-fee]').text()).toBe('600 元')
    expect(w.find('[data-testid=confirm-invoice-title]').text()).toBe('广州示例科技有限公司')
    expect(w.find('[data-testid=confirm-email]').text()).toBe('caiwu@example.cn')
    expect(w.find('[data-testid=renew-pay-button]').text()).toBe('确认支付 600 元')
  })

  it('a key pulled out mid-install keeps the error shown, and plugged back in offers to resume', async () => {
    upsert(key('A1'))
    let step = 'paid'
    const calls = shell({
      renew_status: () =>
        renewState({
          pending: { business_id: 'B1', old_id: '01', step: step === 'paid' ? 'applied' : 'issued' },
          business: business('renewal', step === 'paid' ? 'paid' : 'certificate_issued', 20000),
        }),
      renew_install: () => {
        step = 'issued'
        throw { code: 'key_removed', message: 'USB Key 已拔出' }
      },
    })
    const { w } = await page(RenewView, '/renew')
    expect(w.find('[data-testid=renew-resume]').exists()).toBe(false)
    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    await w.find('[data-testid=renew-install]').trigger('submit')
    await flush()
    await flush()
    expect(w.find('[data-testid=error]').attributes('data-code')).toBe('key_removed')
    expect(w.find('[data-testid=renew-resume]').exists()).toBe(true)
    expect((w.find('[data-testid=pin]').element as HTMLInputElement).value).toBe('')

    // Pulled out: the page stays with this key (another one is plugged in) and says so.
    upsert(key('B2'))
    remove('A1')
    await flush()
    expect(w.find('[data-testid=key-missing]').text()).toContain('A1')
    expect(calls.filter((c) => c.cmd === 'renew_status').every((c) => c.args.serial === 'A1')).toBe(true)
    // The key named by its company; the payment and the old certificate said to be safe.
    const out = w.find('[data-testid=renew-key-out]')
    expect(out.text()).toContain('广州示例科技有限公司的 USB Key 已拔出')
    expect(out.text()).toContain('已支付的费用和原证书都安全')
    expect(out.text()).toContain('插回后点继续安装')
    expect(w.find('[data-testid=error]').exists()).toBe(false)
    expect(w.find('[data-testid=renew-install-button]').exists()).toBe(false)
    upsert(key('A1'))
    await flush()
    await flush()
    expect(w.find('[data-testid=renew-key-out]').exists()).toBe(false)
    expect(w.find('[data-testid=error]').exists()).toBe(false)
    expect(w.find('[data-testid=renew-resume]').text()).toContain('广州示例科技有限公司')
    expect(w.find('[data-testid=renew-resume]').text()).toContain('已支付的费用和原证书都安全')
    expect(w.find('[data-testid=renew-install-button]').text()).toBe('继续安装')
  })

  it('holds the final try back until confirmed, and offers 忘记密码', async () => {
    upsert(key('A1'))
    shell({ renew_status: () => renewState() }, pin('final_try', 1))
    const { w } = await page(RenewView, '/renew')
    await w.find('[data-testid=invoice-title]').setValue('X')
    await w.find('[data-testid=invoice-email]').setValue('a@b.cn')
    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    expect(w.find('[data-testid=renew-apply]').attributes('disabled')).toBeDefined()
    expect(w.find('[data-testid=final-forgot]').exists()).toBe(true)
    await w.find('[data-testid=confirm-final]').setValue(true)
    expect(w.find('[data-testid=renew-apply]').attributes('disabled')).toBeUndefined()
  })

  it('sends a locked key to 忘记密码', async () => {
    upsert(key('A1'))
    shell({ renew_status: () => renewState() }, pin('locked', 0))
    const { w, router } = await page(RenewView, '/renew')
    await w.find('[data-testid=go-unlock]').trigger('click')
    await flush()
    expect(router.currentRoute.value.path).toBe('/unlock/A1')
  })
})

const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3])

async function choose(w: ReturnType<typeof mount>, testid: string, file: File) {
  const input = w.find(`[data-testid=${testid}]`)
  Object.defineProperty(input.element, 'files', { value: [file], configurable: true })
  await input.trigger('change')
  for (let i = 0; i < 5; i++) await flush()
}

describe('电子印章', () => {
  it('refuses a scan that is not PNG or JPEG, previews one that is, and applies', async () => {
    upsert(key('A1'))
    const calls = shell({
      seal_status: () => null,
      seal_apply: () => business('seal', 'under_review'),
    })
    const { w } = await page(SealView, '/seal')
    // The seal carries the registered name, which cannot be edited here.
    expect(w.find('[data-testid=seal-name-fixed]').text()).toBe('广州示例科技有限公司')
    expect(w.find('[data-testid=seal-apply-form] input[type=text], [data-testid=seal-apply-form] input:not([type])').exists()).toBe(false)
    const rules = w.find('[data-testid=seal-rules]').text()
    expect(rules).toContain('每张证书只能有一枚电子印章')
    expect(rules).toContain('单位名称变更须办理【变更】')
    await choose(w, 'seal-scan', new File(['%PDF-1.7'], 'scan.pdf', { type: 'application/pdf' }))
    expect(w.find('[data-testid=file-problem]').text()).toContain('PNG')
    await choose(w, 'seal-scan', new File([PNG], 'scan.png', { type: 'image/png' }))
    expect(w.find('[data-testid=file-preview]').exists()).toBe(true)
    expect(w.find('[data-testid=file-name]').text()).toBe('scan.png')
    await w.find('[data-testid=seal-kind-contract]').setValue(true)
    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    await w.find('[data-testid=seal-apply-form]').trigger('submit')
    await flush()
    const args = calls.find((c) => c.cmd === 'seal_apply')!.args
    expect(args).toMatchObject({ serial: 'A1', name: '广州示例科技有限公司', kind: 'contract', change: false, pin: 'Old#Pin2026' })
    // The scan goes as raw bytes, never as a JSON array; the PIN and the rest in the header.
    expect(args.body).toBeInstanceOf(Uint8Array)
    expect(Array.from(args.body as Uint8Array)).toEqual(Array.from(PNG))
    expect(args.scan).toBeUndefined()
    expect(w.find('[data-testid=seal-review]').exists()).toBe(true)
  })

  it('downloads the CA’s seal form and says where it is', async () => {
    upsert(key('A1'))
    const calls = shell({
      seal_status: () => null,
      seal_form_download: () => '/home/user/下载/电子印章申请表.html',
    })
    const { w } = await page(SealView, '/seal')
    expect(w.find('[data-testid=seal-form-download]').text()).toBe('下载电子印章申请表')
    await w.find('[data-testid=seal-form-download]').trigger('click')
    await flush()
    expect(calls.filter((c) => c.cmd === 'seal_form_download').map((c) => c.args)).toEqual([{ serial: 'A1' }])
    expect(w.find('[data-testid=seal-form-saved]').text()).toBe('申请表已保存到：/home/user/下载/电子印章申请表.html')
  })

  it('installs an approved seal and shows its image', async () => {
    upsert(key('A1'))
    const shown = {
      name: '广州示例科技有限公司',
      seal_type: 1,
      es_id: 'ES1',
      created: '2026-11-01T00:00:00Z',
      valid_start: '2026-11-01T00:00:00Z',
      valid_end: '2027-11-01T00:00:00Z',
      image_type: 'png',
      image_len: 11,
      kind: 'official',
      mime_type: 'image/png',
      verified: true,
      image_url: 'data:image/png;base64,iVBORw0KGgo=',
    }
    let installed = false
    const calls = shell({
      seal_status: () => business('seal', installed ? 'completed' : 'certificate_issued'),
      seal_install: () => ((installed = true), shown),
      token_list: () => [key('A1')],
    })
    const { w } = await page(SealView, '/seal')
    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    await w.find('[data-testid=seal-install]').trigger('submit')
    await flush()
    await flush()
    expect(calls.find((c) => c.cmd === 'seal_install')!.args).toMatchObject({ serial: 'A1', pin: 'Old#Pin2026' })
    expect(w.find('[data-testid=seal-image]').attributes('src')).toBe(shown.image_url)
    expect(w.find('[data-testid=seal-shown]').text()).toContain('签名有效，与本证书匹配')
    expect(w.find('[data-testid=seal-shown]').text()).not.toContain('绑定')
    expect(w.find('[data-testid=seal-installed]').text()).toContain('电子印章已安装')
    // With a seal on the key, the next application is a change.
    expect(w.find('[data-testid=seal-apply]').text()).toBe('变更印章')
  })
})

describe('忘记密码', () => {
  it('asks for documents when the requester is not the handler, then waits for review', async () => {
    upsert(key('A1', { token: { ...key('A1').token, pin: pin('locked', 0) } }))
    const calls = shell({
      flow_pending: () => [],
      unlock_apply: () => business('unlock', 'awaiting_documents'),
      unlock_attach: () => ({}),
      unlock_submit: () => business('unlock', 'under_review'),
    })
    const { w } = await page(UnlockView, '/unlock/A1')
    expect(w.find('[data-testid=unlock-pin]').text()).toContain('已锁定')
    // Before anything is sent: review takes about two working days and is told by SMS; only
    // the handler of the latest business is approved automatically; the materials listed.
    expect(w.find('[data-testid=unlock-intro]').text()).toContain('约需 2 个工作日')
    expect(w.find('[data-testid=unlock-intro]').text()).toContain('短信通知')
    expect(w.find('[data-testid=unlock-rule]').text()).toContain('自动审核只认最近一笔业务登记的经办人本人')
    expect(w.find('[data-testid=unlock-rule]').text()).toContain('否则转为人工审核')
    expect(w.findAll('[data-testid=unlock-rule] [data-testid=unlock-materials] li')).toHaveLength(3)
    expect(w.find('[data-testid=wizard-steps]').text()).toContain('上传材料（非最近经办人需人工审核）')
    await w.find('[data-testid=requester-name]').setValue('张三')
    await w.find('[data-testid=requester-id]').setValue('440101199001011234')
    await w.find('[data-testid=requester-phone]').setValue('13800000002')
    await w.find('form').trigger('submit')
    await flush()
    expect(calls.find((c) => c.cmd === 'unlock_apply')!.args).toMatchObject({ name: '张三', phone: '13800000002' })
    await choose(w, 'attach-file', new File([PNG], 'id.png', { type: 'image/png' }))
    await w.find('[data-testid=attach-upload]').trigger('click')
    await flush()
    const attached = calls.find((c) => c.cmd === 'unlock_attach')!.args
    expect(attached).toMatchObject({ serial: 'A1', kind: 'id_card' })
    expect(Array.from(attached.body as Uint8Array)).toEqual(Array.from(PNG))
    await w.find('[data-testid=unlock-submit]').trigger('click')
    await flush()
    const review = w.find('[data-testid=unlock-review]').text()
    expect(review).toContain('约需 2 个工作日')
    expect(review).toContain('短信通知申请人手机 138****0002')
  })

  it('shows a rejection with the reviewer’s reason, and starts over on request', async () => {
    upsert(key('A1', { token: { ...key('A1').token, pin: pin('locked', 0) } }))
    const rejected = business('unlock', 'rejected')
    rejected.timeline[1].note = '审核未通过：身份证模糊'
    const calls = shell({ flow_pending: () => ['unlock'], unlock_status: () => rejected })
    const { w } = await page(UnlockView, '/unlock/A1')
    await flush()
    const panel = w.find('[data-testid=unlock-rejected]')
    expect(panel.find('h2').text()).toBe('解锁申请未通过审核')
    expect(panel.find('[data-testid=unlock-rejected-note]').text()).toBe('审核未通过：身份证模糊')
    expect(panel.text()).toContain('联系 CA 客服')
    await w.find('[data-testid=unlock-again]').trigger('click')
    await flush()
    expect(w.find('[data-testid=unlock-rejected]').exists()).toBe(false)
    expect(w.find('[data-testid=requester-name]').exists()).toBe(true)
    // Nothing was sent to the CA to start over: the next application is the operator's.
    expect(calls.some((c) => c.cmd === 'unlock_apply')).toBe(false)
  })

  it('approves the handler at once with the code already sent; a new code names its 编号', async () => {
    upsert(key('A1', { token: { ...key('A1').token, pin: pin('locked', 0) } }))
    const calls = shell({
      flow_pending: () => [],
      unlock_apply: () => business('unlock', 'approved'),
      unlock_send_code: () => ({ ...CODE_SENT, phone_masked: '138****8001', reference: '42' }),
      unlock_finish: () => business('unlock', 'completed'),
      token_list: () => [key('A1')],
    })
    const { w } = await page(UnlockView, '/unlock/A1')
    await w.find('[data-testid=requester-name]').setValue('李经办')
    await w.find('[data-testid=requester-id]').setValue('44010119900307123X')
    await w.find('[data-testid=requester-phone]').setValue('13800138001')
    await w.find('form').trigger('submit')
    await flush()
    // The approval sent the first code: nothing more is asked of the CA, the field is there.
    expect(w.find('[data-testid=unlock-approved]').text()).toContain('已把验证码以短信发到申请人手机 138****8001')
    expect(calls.some((c) => c.cmd === 'unlock_send_code' || c.cmd === 'unlock_status')).toBe(false)
    expect(w.find('[data-testid=sms-code]').exists()).toBe(true)
    await w.find('[data-testid=send-code]').trigger('click')
    await flush()
    expect(calls.filter((c) => c.cmd === 'unlock_send_code').map((c) => c.args)).toEqual([{ serial: 'A1' }])
    expect(w.find('[data-testid=code-sent]').text()).toContain('138****8001')
    expect(w.find('[data-testid=code-sent]').text()).toContain('编号为 42')
    await w.find('[data-testid=sms-code]').setValue('654321')
    await w.find('[data-testid=new-pin]').setValue(GOOD)
    await w.find('[data-testid=new-pin-again]').setValue(GOOD)
    await w.find('[data-testid=unlock-finish]').trigger('submit')
    await flush()
    expect(calls.find((c) => c.cmd === 'unlock_finish')!.args).toMatchObject({ serial: 'A1', code: '654321', newPin: GOOD })
    expect(w.find('[data-testid=unlock-done]').exists()).toBe(true)
  })

  it('names another requester’s open unlock, masked, and says what the operator can do', async () => {
    upsert(key('A1', { token: { ...key('A1').token, pin: pin('locked', 0) } }))
    shell({
      flow_pending: () => [],
      unlock_apply: () => {
        throw {
          code: 'unlock_by_other',
          message: '该证书已有一笔解锁申请正在办理（申请人 王*，手机 139****0002，2026-11-30 09:15 提交），本机不会接手他人的申请。',
          open_business: { kind: 'unlock', requester_masked: '王*', phone_masked: '139****0002', opened_at: '2026-11-30T01:15:00Z' },
        }
      },
    })
    const { w } = await page(UnlockView, '/unlock/A1')
    await w.find('[data-testid=requester-name]').setValue('张三')
    await w.find('[data-testid=requester-id]').setValue('440101199001011234')
    await w.find('[data-testid=requester-phone]').setValue('13800000002')
    await w.find('form').trigger('submit')
    await flush()
    const notice = w.find('[data-testid=unlock-by-other]')
    expect(notice.find('h2').text()).toBe('这把 USB Key 已有一笔解锁申请正在办理')
    const who = notice.find('[data-testid=unlock-by-other-who]').text()
    expect(who).toContain('王*')
    expect(who).toContain('139****0002')
    expect(notice.text()).toContain('不会接手别人的申请')
    const todo = notice.findAll('[data-testid=unlock-by-other-do] li').map((li) => li.text())
    expect(todo).toHaveLength(3)
    expect(todo[0]).toContain('审核结束')
    expect(todo[1]).toContain('登记的经办人')
    expect(todo[2]).toContain('联系 CA 客服')
    // Shown once, as the notice, not again as a bare error; the form stays to apply again.
    expect(w.find('[data-testid=error]').exists()).toBe(false)
    expect(w.find('[data-testid=requester-name]').exists()).toBe(true)
  })

  it('says the same when the CA refuses without naming the other unlock', async () => {
    upsert(key('A1'))
    shell({
      flow_pending: () => [],
      unlock_apply: () => {
        throw { code: 'ca_unlock_under_way', message: '该证书已有他人提交的解锁申请正在办理，请等待其结束或联系 CA 客服。' }
      },
    })
    const { w } = await page(UnlockView, '/unlock/A1')
    await w.find('[data-testid=requester-name]').setValue('张三')
    await w.find('[data-testid=requester-id]').setValue('440101199001011234')
    await w.find('[data-testid=requester-phone]').setValue('13800000002')
    await w.find('form').trigger('submit')
    await flush()
    expect(w.find('[data-testid=unlock-by-other]').attributes('data-code')).toBe('ca_unlock_under_way')
    expect(w.find('[data-testid=unlock-by-other-who]').exists()).toBe(false)
  })
})

describe('BusinessTimeline', () => {
  it('leaves out a note that says nothing, keeps one that does, and shows the local time', async () => {
    const b = business('seal', 'under_review', 0)
    b.timeline = [
      { at: '2026-10-22T17:30:00Z', state: 'submitted', note: '' },
      { at: '2026-10-22T18:00:00Z', state: 'approved', note: '审核通过：' },
      { at: '2026-10-22T18:10:00Z', state: 'rejected', note: '审核未通过：印模不清晰' },
    ]
    const w = mount(BusinessTimeline, { props: { b } })
    const notes = w.findAll('[data-testid=event-note]').map((n) => n.text())
    expect(notes).toEqual(['· 审核未通过：印模不清晰'])
    expect(w.text()).not.toContain('审核通过：')
    expect(w.find('[data-testid=business-state]').classes()).toContain('warn')
    expect(w.find('[data-testid=business-state]').text()).toBe('审核中')
    expect(w.text()).not.toContain('UTC')
  })
})

describe('办理进度查询', () => {
  const list = () => ({
    businesses: [business('renewal', 'paid', 20000), business('issue', 'completed')],
    resumable: ['renew'],
  })

  it('asks for the PIN with the tries left, sends it, lists every business and keeps no PIN', async () => {
    upsert(key('A1'))
    const calls = shell({ flow_pending: () => ['renew'], progress_list: list }, pin('count_low', 8))
    const { w } = await page(ProgressView, '/progress')
    // What can be resumed here is known without the PIN.
    expect(w.find('[data-testid=resumable]').text()).toContain('继续续期')
    expect(w.find('[data-testid=progress-intro]').text()).toContain('输入证书密码以查看本证书的全部业务')
    expect(w.find('[data-testid=pin-state]').text()).toContain('再错 8 次将锁定')
    expect(w.findAll('[data-testid=business]')).toHaveLength(0)
    expect(w.find('[data-testid=progress-submit]').attributes('disabled')).toBeDefined()

    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    await w.find('[data-testid=progress-form]').trigger('submit')
    await flush()
    expect(calls.filter((c) => c.cmd === 'progress_list').map((c) => c.args)).toEqual([
      { serial: 'A1', pin: 'Old#Pin2026', confirmFinalTry: false },
    ])
    const rows = w.findAll('[data-testid=business]')
    expect(rows).toHaveLength(2)
    expect(rows[0].text()).toContain('证书续期')
    expect(rows[0].text()).toContain('已支付')
    expect(w.find('[data-testid=pin]').exists()).toBe(false)
    // The 业务编号 to quote, the state in words and in a colour, the invoice, no empty note.
    expect(rows[0].find('[data-testid=business-id]').text()).toBe('B1')
    expect(rows[0].find('[data-testid=business-state]').classes()).toContain('good')
    expect(rows[0].find('[data-testid=business-invoice]').text()).toContain('业务完成后开具')
    expect(rows[1].find('[data-testid=business-invoice]').exists()).toBe(false)
    expect(rows[0].findAll('[data-testid=event-note]')).toHaveLength(0)

    // Asking again needs the PIN again: the field comes back empty.
    await w.find('[data-testid=progress-again]').trigger('click')
    await flush()
    expect((w.find('[data-testid=pin]').element as HTMLInputElement).value).toBe('')
    expect(w.findAll('[data-testid=business]')).toHaveLength(0)
  })

  it('a wrong PIN says how many tries are left and empties the field', async () => {
    upsert(key('A1'))
    shell({
      flow_pending: () => [],
      progress_list: () => {
        throw { code: 'pin_incorrect', message: '证书密码错误，已输错 3 次，再错 7 次将锁定。', pin: pin('count_low', 7) }
      },
    })
    const { w } = await page(ProgressView, '/progress')
    await w.find('[data-testid=pin]').setValue('Wrong#2026')
    await w.find('[data-testid=progress-form]').trigger('submit')
    await flush()
    expect(w.find('[data-testid=error][data-code=pin_incorrect]').text()).toContain('7 次')
    expect(w.find('[data-testid=pin-state]').text()).toContain('再错 7 次将锁定')
    expect((w.find('[data-testid=pin]').element as HTMLInputElement).value).toBe('')
  })

  it('holds the final try back until confirmed', async () => {
    upsert(key('A1'))
    const calls = shell({ flow_pending: () => [], progress_list: list }, pin('final_try', 1))
    const { w } = await page(ProgressView, '/progress')
    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    expect(w.find('[data-testid=progress-submit]').attributes('disabled')).toBeDefined()
    expect(w.find('[data-testid=final-forgot]').exists()).toBe(true)
    await w.find('[data-testid=confirm-final]').setValue(true)
    await w.find('[data-testid=progress-form]').trigger('submit')
    await flush()
    expect(calls.find((c) => c.cmd === 'progress_list')!.args).toMatchObject({ confirmFinalTry: true })
  })

  it('sends a locked key to 忘记密码 and asks the CA nothing', async () => {
    upsert(key('A1'))
    const calls = shell({ flow_pending: () => [] }, pin('locked', 0))
    const { w, router } = await page(ProgressView, '/progress')
    expect(w.find('[data-testid=pin-locked]').text()).toContain('忘记密码')
    expect(w.find('[data-testid=progress-submit]').attributes('disabled')).toBeDefined()
    await w.find('[data-testid=go-unlock]').trigger('click')
    await flush()
    expect(router.currentRoute.value.path).toBe('/unlock/A1')
    expect(calls.some((c) => c.cmd === 'progress_list')).toBe(false)
  })
})

describe('progress bar', () => {
  it('shows the step and how far along', () => {
    const w = mount(StepProgress, { props: { progress: { step: 'issuing', index: 4, total: 9 } } })
    expect(w.text()).toContain('CA 正在签发证书')
    expect(w.find('[role=progressbar]').attributes('aria-valuenow')).toBe('44')
  })
})
