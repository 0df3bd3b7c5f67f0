// The workflow pages through the mocked shell: what each sends, what it shows, and that no
// PIN stays in a field after a call.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import ActivateView from '../src/views/ActivateView.vue'
import RenewView from '../src/views/RenewView.vue'
import SealView from '../src/views/SealView.vue'
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

describe('激活证书', () => {
  it('sends the code, checks the new PIN live, activates and empties the fields', async () => {
    upsert(key('A1', { next: { action: 'activate' } }))
    const calls = shell({
      activate_send_code: () => ({ phone_masked: '138****0001', expires_at: '2026-11-21T10:10:00Z', resend_after: '2026-11-21T10:01:00Z' }),
      activate: () => ({ state: 'active' }),
      token_list: () => [key('A1')],
    })
    const { w } = await page(ActivateView, '/activate?serial=A1')
    expect(w.find('[data-testid=wizard-steps]').text()).toContain('输入短信验证码')
    await w.find('[data-testid=send-code]').trigger('click')
    await flush()
    expect(w.find('[data-testid=code-sent]').text()).toContain('138****0001')

    await w.find('[data-testid=sms-code]').setValue('123456')
    await w.find('[data-testid=new-pin]').setValue('weak')
    await w.find('[data-testid=new-pin-again]').setValue('weak')
    expect(w.find('[data-testid=activate-submit]').attributes('disabled')).toBeDefined()
    await w.find('[data-testid=new-pin]').setValue(GOOD)
    await w.find('[data-testid=new-pin-again]').setValue(GOOD)
    expect(w.find('[data-testid=activate-submit]').attributes('disabled')).toBeUndefined()
    await w.find('form').trigger('submit')
    await flush()
    const sent = calls.find((c) => c.cmd === 'activate')!.args
    expect(sent).toMatchObject({ serial: 'A1', code: '123456', newPin: GOOD, newPinAgain: GOOD })
    expect(sent.progress).toBeDefined()
    expect(w.find('[data-testid=activate-done]').exists()).toBe(true)
    expectNoPinKept(w, ['newPin', 'again'], [GOOD])
  })

  it('shows the CA’s error for a wrong code and keeps no PIN', async () => {
    upsert(key('A1'))
    shell({ activate: () => { throw { code: 'ca_code_invalid', message: '验证码不正确' } } })
    const { w } = await page(ActivateView, '/activate')
    await w.find('[data-testid=sms-code]').setValue('000000')
    await w.find('[data-testid=new-pin]').setValue(GOOD)
    await w.find('[data-testid=new-pin-again]').setValue(GOOD)
    await w.find('form').trigger('submit')
    await flush()
    expect(w.find('[data-testid=error][data-code=ca_code_invalid]').exists()).toBe(true)
    expect((w.find('[data-testid=new-pin]').element as HTMLInputElement).value).toBe('')
    expect((w.find('[data-testid=new-pin-again]').element as HTMLInputElement).value).toBe('')
    expectNoPinKept(w, ['newPin', 'again'], [GOOD])
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
    shell({ renew_status: () => renewState({ certificate: { ...certificate, renewal: { status: 'expired' } } }) })
    const again = await page(RenewView, '/renew')
    expect(again.w.find('[data-testid=renew-eligibility]').text()).toContain('重新申请')
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

  it('pays in the sandbox, then installs with a progress channel; an interrupted install is offered as resume', async () => {
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
    })
    const { w } = await page(RenewView, '/renew')
    expect(w.find('[data-testid=renew-pay]').text()).toContain('200 元')
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
    upsert(key('A1'))
    await flush()
    await flush()
    expect(w.find('[data-testid=error]').exists()).toBe(false)
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
    expect((w.find('[data-testid=seal-name-input]').element as HTMLInputElement).value).toBe('广州示例科技有限公司')
    await choose(w, 'seal-scan', new File(['%PDF-1.7'], 'scan.pdf', { type: 'application/pdf' }))
    expect(w.find('[data-testid=file-problem]').text()).toContain('PNG')
    await choose(w, 'seal-scan', new File([PNG], 'scan.png', { type: 'image/png' }))
    expect(w.find('[data-testid=file-preview]').text()).toContain('scan.png')
    await w.find('[data-testid=seal-kind-contract]').setValue(true)
    await w.find('[data-testid=pin]').setValue('Old#Pin2026')
    await w.find('[data-testid=seal-apply-form]').trigger('submit')
    await flush()
    const args = calls.find((c) => c.cmd === 'seal_apply')!.args
    expect(args).toMatchObject({ serial: 'A1', kind: 'contract', change: false, pin: 'Old#Pin2026' })
    // The scan goes as raw bytes, never as a JSON array; the PIN and the rest in the header.
    expect(args.body).toBeInstanceOf(Uint8Array)
    expect(Array.from(args.body as Uint8Array)).toEqual(Array.from(PNG))
    expect(args.scan).toBeUndefined()
    expect(w.find('[data-testid=seal-review]').exists()).toBe(true)
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
    expect(w.find('[data-testid=seal-shown]').text()).toContain('签名有效')
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
    expect(w.find('[data-testid=unlock-review]').exists()).toBe(true)
  })
})

describe('办理进度查询', () => {
  it('lists every business with its timeline and what can be resumed', async () => {
    upsert(key('A1'))
    shell({
      progress_list: () => ({
        businesses: [business('renewal', 'paid', 20000), business('issue', 'completed')],
        resumable: ['renew'],
      }),
    })
    const { w } = await page(ProgressView, '/progress')
    const rows = w.findAll('[data-testid=business]')
    expect(rows).toHaveLength(2)
    expect(rows[0].text()).toContain('证书续期')
    expect(rows[0].text()).toContain('已支付')
    expect(w.find('[data-testid=resumable]').text()).toContain('继续续期')
  })
})

describe('progress bar', () => {
  it('shows the step and how far along', () => {
    const w = mount(StepProgress, { props: { progress: { step: 'issuing', index: 4, total: 9 } } })
    expect(w.text()).toContain('CA 正在签发证书')
    expect(w.find('[role=progressbar]').attributes('aria-valuenow')).toBe('44')
  })
})
