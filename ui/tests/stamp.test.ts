// 签章 through the mocked shell: the pages as drawn, the seal placed by a click, what the
// stamp sends, the PIN guard, the refusals, and the check of the stamped file.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import StampView from '../src/views/StampView.vue'
import KeyCard from '../src/components/KeyCard.vue'
import { setLang } from '../src/i18n'
import { resetKeys, upsert } from '../src/keys'
import type { KeyView, PinStatus, StampReport, StampView as Preview } from '../src/ipc'
import { key, pin, pinInfo } from './samples'
import { flush, testRouter } from './helpers'

beforeEach(() => setLang('zh-CN'))
afterEach(() => {
  resetKeys()
  clearMocks()
})

const PIN = 'Stamp#2026pin'

const sealed = (serial = 'A1'): KeyView =>
  key(serial, {
    seal: {
      state: 'present',
      summary: {
        name: '广州示例科技有限公司',
        seal_type: 1,
        es_id: 'ES1',
        created: '2026-11-01T00:00:00Z',
        valid_start: '2026-11-01T00:00:00Z',
        valid_end: '2027-11-01T00:00:00Z',
        image_type: 'png',
        image_len: 11,
      },
    },
  })

const preview = (over: Partial<Preview> = {}): Preview => ({
  // A4 portrait, then A4 landscape.
  pages: [
    { width_mm: 210, height_mm: 297 },
    { width_mm: 297, height_mm: 210 },
  ],
  signatures: 0,
  seal_name: '广州示例科技有限公司',
  seal_width_mm: 40,
  seal_height_mm: 40,
  seal_image_url: 'data:image/png;base64,iVBORw0KGgo=',
  organization: '广州示例科技有限公司',
  suggested_output: '/home/clerk/投标书-已盖章.pdf',
  ...over,
})

const report = (over: Partial<StampReport['signatures'][number]> = {}): StampReport => ({
  signatures: [
    {
      field: 'Keyward_Seal_1',
      pages: [1],
      organization: '广州示例科技有限公司',
      credit_code: '91440101MA59ABCDEX',
      signer: 'CN=广州示例科技有限公司',
      signed_at: '2026-12-01T10:30:05+08:00',
      intact: true,
      unchanged_since: true,
      chain_trusted: true,
      seal: { name: '广州示例科技有限公司', es_id: 'ES1', made_under_root: true, bound_to_signer: true, picture_matches: true },
      valid: true,
      problems: [],
      ...over,
    },
  ],
  all_valid: over.valid ?? true,
})

type Calls = { cmd: string; args: Record<string, unknown> }[]

function shell(answers: Record<string, (args: Record<string, unknown>) => unknown>, status: PinStatus = pin()): Calls {
  const calls: Calls = []
  mockIPC((cmd, raw) => {
    const args = (raw ?? {}) as Record<string, unknown>
    calls.push({ cmd, args })
    if (cmd === 'pin_status') return pinInfo('A1', status)
    if (cmd === 'token_list') return []
    const answer = answers[cmd]
    if (!answer) throw { code: 'internal', message: `unexpected ${cmd}` }
    return answer(args)
  })
  return calls
}

async function opened(answers: Record<string, (args: Record<string, unknown>) => unknown>, status?: PinStatus, p = preview()) {
  upsert(sealed())
  const calls = shell({ stamp_preview: () => p, ...answers }, status)
  const router = await testRouter('/stamp?serial=A1')
  const w = mount(StampView, { global: { plugins: [router] } })
  await flush()
  await w.find('[data-testid=stamp-path]').setValue(' /home/clerk/投标书.pdf ')
  await w.find('[data-testid=stamp-open-form]').trigger('submit')
  for (let i = 0; i < 3; i++) await flush()
  return { w, calls, router }
}

const px = (style: string | undefined, prop: string) => Number(style?.match(new RegExp(`${prop}: (-?[\\d.]+)px`))?.[1])

describe('签章', () => {
  it('draws every page in its proportions with its number, and the seal at the usual place', async () => {
    const { w, calls } = await opened({})
    expect(calls.find((c) => c.cmd === 'stamp_preview')!.args).toEqual({ serial: 'A1', path: ' /home/clerk/投标书.pdf ' })
    const pages = w.findAll('[data-testid=stamp-page-outline]')
    expect(pages).toHaveLength(2)
    const [portrait, landscape] = pages.map((p) => p.attributes('style'))
    expect(px(portrait, 'height')).toBe(200)
    expect(px(portrait, 'width')).toBeCloseTo((200 * 210) / 297, 3)
    expect(px(landscape, 'width')).toBeCloseTo((200 * 297) / 210, 3)
    expect(w.findAll('figcaption').map((f) => f.text())).toEqual(['第 1 页', '第 2 页'])
    // The seal on the last page, bottom right, 25 mm clear: centre at 297-25-20, 210-25-20.
    const seals = w.findAll('[data-testid=stamp-seal]')
    expect(seals).toHaveLength(1)
    expect(pages[1].find('[data-testid=stamp-seal]').exists()).toBe(true)
    expect(w.find('[data-testid=stamp-place]').text()).toContain('第 2 页，距左边 252 毫米、距顶边 165 毫米')
    // Drawn 40 mm wide at the page's scale.
    expect(px(seals[0].attributes('style'), 'width')).toBeCloseTo((40 * 200) / 210, 3)
    expect(w.find('[data-testid=stamp-seal] img').attributes('src')).toBe(preview().seal_image_url)
    expect((w.find('[data-testid=stamp-output]').element as HTMLInputElement).value).toBe('/home/clerk/投标书-已盖章.pdf')
    expect(w.find('[data-testid=stamp-org]').text()).toBe('广州示例科技有限公司')
  })

  it('places the seal where the page is clicked, stamps with the PIN, empties it and shows the check', async () => {
    const { w, calls } = await opened({
      stamp_file: () => ({ field: 'Keyward_Seal_1', pages: [1], bytes: 12345, output: '/home/clerk/投标书-已盖章.pdf' }),
      stamp_verify: () => report(),
    })
    const k = 200 / 297
    // 100 mm from the left, 60 mm from the top of page 1.
    await w.findAll('[data-testid=stamp-page-outline]')[0].trigger('click', { clientX: 100 * k, clientY: 60 * k })
    expect(w.find('[data-testid=stamp-place]').text()).toContain('第 1 页，距左边 100 毫米、距顶边 60 毫米')
    expect(w.findAll('[data-testid=stamp-page-outline]')[0].find('[data-testid=stamp-seal]').exists()).toBe(true)
    // A click by the edge keeps the whole seal on the page.
    await w.findAll('[data-testid=stamp-page-outline]')[0].trigger('click', { clientX: 2 * k, clientY: 296 * k })
    expect(w.find('[data-testid=stamp-place]').text()).toContain('距左边 20 毫米、距顶边 277 毫米')
    await w.findAll('[data-testid=stamp-page-outline]')[0].trigger('click', { clientX: 100 * k, clientY: 60 * k })

    expect(w.find('[data-testid=stamp-submit]').attributes('disabled')).toBeDefined()
    await w.find('[data-testid=pin]').setValue(PIN)
    expect(w.find('[data-testid=stamp-submit]').attributes('disabled')).toBeUndefined()
    await w.find('[data-testid=stamp-form]').trigger('submit')
    for (let i = 0; i < 3; i++) await flush()
    const args = calls.find((c) => c.cmd === 'stamp_file')!.args
    expect(args).toMatchObject({
      serial: 'A1',
      path: '/home/clerk/投标书.pdf',
      output: '/home/clerk/投标书-已盖章.pdf',
      place: { kind: 'at', page: 1, x_mm: 100, y_mm: 60 },
      pin: PIN,
      confirmFinalTry: false,
    })
    expect(calls.find((c) => c.cmd === 'stamp_verify')!.args).toEqual({ path: '/home/clerk/投标书-已盖章.pdf' })
    expect(w.find('[data-testid=stamp-done]').text()).toContain('/home/clerk/投标书-已盖章.pdf')
    expect(w.find('[data-testid=stamp-done]').text()).toContain('原文件未改动')
    const sig = w.find('[data-testid=stamp-signature]')
    expect(sig.find('[data-testid=sig-org]').text()).toBe('广州示例科技有限公司')
    expect(sig.find('[data-testid=sig-credit-code]').text()).toBe('91440101MA59ABCDEX')
    expect(sig.find('[data-testid=sig-time]').text()).toMatch(/^2026-12-01 \d\d:\d\d$/)
    for (const f of ['sig-intact', 'sig-unchanged', 'sig-chain', 'sig-seal-bound']) {
      expect(sig.find(`[data-testid=${f}]`).text(), f).toBe('是')
    }
    expect(w.find('[data-testid=stamp-verdict]').text()).toBe('全部签章有效')
    expect((w.vm as unknown as { pin: string }).pin).toBe('')
    expect(w.html()).not.toContain(PIN)
  })

  it('a 骑缝章 shows a strip of the seal on every page and sends only the height', async () => {
    const { w, calls } = await opened({
      stamp_file: () => ({ field: 'Keyward_Seal_1', pages: [1, 2], bytes: 1, output: '/o.pdf' }),
      stamp_verify: () => report({ pages: [1, 2] }),
    })
    await w.find('[data-testid=stamp-mode-cross]').setValue(true)
    const strips = w.findAll('[data-testid=stamp-seal]')
    expect(strips).toHaveLength(2)
    // Page 2 (landscape) shows the second half of the seal: its picture shifted left by one strip.
    const k2 = 200 / 210
    expect(px(strips[1].attributes('style'), 'width')).toBeCloseTo((40 * k2) / 2, 3)
    expect(px(strips[1].find('img').attributes('style'), 'left')).toBeCloseTo((-40 * k2) / 2, 3)
    expect(w.find('[data-testid=stamp-place]').text()).toContain('距顶边 148.5 毫米')
    await w.findAll('[data-testid=stamp-page-outline]')[1].trigger('click', { clientX: 10, clientY: 50 * k2 })
    await w.find('[data-testid=pin]').setValue(PIN)
    await w.find('[data-testid=stamp-form]').trigger('submit')
    for (let i = 0; i < 3; i++) await flush()
    expect(calls.find((c) => c.cmd === 'stamp_file')!.args.place).toEqual({ kind: 'cross_page', y_mm: 50 })
  })

  it('holds a 骑缝章 back on a document signed already', async () => {
    const { w } = await opened({}, undefined, preview({ signatures: 1 }))
    expect(w.find('[data-testid=stamp-signed-already]').text()).toContain('已有 1 个签章')
    await w.find('[data-testid=stamp-mode-cross]').setValue(true)
    await w.find('[data-testid=pin]').setValue(PIN)
    expect(w.find('[data-testid=stamp-cross-signed]').exists()).toBe(true)
    expect(w.find('[data-testid=stamp-submit]').attributes('disabled')).toBeDefined()
  })

  it('an existing output is refused clearly, the form stays and the PIN is emptied', async () => {
    const { w } = await opened({
      stamp_file: () => {
        throw { code: 'output_exists', message: '文件 /home/clerk/投标书-已盖章.pdf 已存在。盖章后的文件另存为新文件，请换一个文件名。' }
      },
    })
    await w.find('[data-testid=pin]').setValue(PIN)
    await w.find('[data-testid=stamp-form]').trigger('submit')
    for (let i = 0; i < 3; i++) await flush()
    expect(w.find('[data-testid=error]').attributes('data-code')).toBe('output_exists')
    expect(w.find('[data-testid=error]').text()).toContain('已存在')
    expect(w.find('[data-testid=stamp-form]').exists()).toBe(true)
    expect(w.find('[data-testid=stamp-done]').exists()).toBe(false)
    expect((w.find('[data-testid=pin]').element as HTMLInputElement).value).toBe('')
    // Another name typed: the refusal gives way.
    await w.find('[data-testid=stamp-output]').setValue('/home/clerk/投标书-已盖章-2.pdf')
    expect(w.find('[data-testid=error]').exists()).toBe(false)
  })

  it('a wrong PIN shows the tries left the key reports', async () => {
    const { w } = await opened({
      stamp_file: () => {
        throw { code: 'pin_incorrect', message: '证书密码错误，已输错 1 次，再错 9 次将锁定。', pin: pin('count_low', 9) }
      },
    })
    await w.find('[data-testid=pin]').setValue('Wrong#1')
    await w.find('[data-testid=stamp-form]').trigger('submit')
    for (let i = 0; i < 3; i++) await flush()
    expect(w.find('[data-testid=error]').attributes('data-code')).toBe('pin_incorrect')
    expect(w.find('[data-testid=pin-state]').text()).toContain('9')
    expect(w.find('[data-testid=pin-warn]').exists()).toBe(true)
  })

  it('holds the final try back until confirmed, and sends the confirmation', async () => {
    const { w, calls } = await opened(
      { stamp_file: () => ({ field: 'F', pages: [2], bytes: 1, output: '/o.pdf' }), stamp_verify: () => report() },
      pin('final_try', 1),
    )
    await w.find('[data-testid=pin]').setValue(PIN)
    expect(w.find('[data-testid=stamp-submit]').attributes('disabled')).toBeDefined()
    expect(w.find('[data-testid=final-forgot]').exists()).toBe(true)
    await w.find('[data-testid=confirm-final]').setValue(true)
    await w.find('[data-testid=stamp-form]').trigger('submit')
    for (let i = 0; i < 3; i++) await flush()
    expect(calls.find((c) => c.cmd === 'stamp_file')!.args.confirmFinalTry).toBe(true)
  })

  it('sends a locked key to 忘记密码', async () => {
    const { w, router } = await opened({}, pin('locked', 0))
    expect(w.find('[data-testid=pin]').exists()).toBe(false)
    await w.find('[data-testid=go-unlock]').trigger('click')
    await flush()
    await vi.waitFor(() => expect(router.currentRoute.value.path).toBe('/unlock/A1'))
  })

  it('a refused document is said before any PIN', async () => {
    upsert(sealed())
    shell({
      stamp_preview: () => {
        throw { code: 'pdf_encrypted', message: '文件已加密或设有密码，无法盖章。请先取消加密再试。 原文件未改动。' }
      },
    })
    const w = mount(StampView, { global: { plugins: [await testRouter('/stamp?serial=A1')] } })
    await flush()
    await w.find('[data-testid=stamp-path]').setValue('/tmp/locked.pdf')
    await w.find('[data-testid=stamp-open-form]').trigger('submit')
    for (let i = 0; i < 3; i++) await flush()
    expect(w.find('[data-testid=error]').attributes('data-code')).toBe('pdf_encrypted')
    expect(w.find('[data-testid=stamp-form]').exists()).toBe(false)
    expect(w.find('[data-testid=pin]').exists()).toBe(false)
  })

  it('a key without a seal is sent to 电子印章 and cannot open a file', async () => {
    upsert(key('A1'))
    shell({})
    const w = mount(StampView, { global: { plugins: [await testRouter('/stamp?serial=A1')] } })
    await flush()
    expect(w.find('[data-testid=stamp-no-seal]').text()).toContain('安装印章')
    await w.find('[data-testid=stamp-path]').setValue('/tmp/a.pdf')
    expect(w.find('[data-testid=stamp-open]').attributes('disabled')).toBeDefined()
  })

  it('checks the stamps of a file alone, and says when one fails', async () => {
    upsert(sealed())
    const calls = shell({ stamp_verify: () => report({ chain_trusted: false, valid: false, problems: ['certificate chain: not under the root'] }) })
    const w = mount(StampView, { global: { plugins: [await testRouter('/stamp?serial=A1')] } })
    await flush()
    await w.find('[data-testid=stamp-path]').setValue('/tmp/signed.pdf')
    await w.find('[data-testid=stamp-check-only]').trigger('click')
    for (let i = 0; i < 3; i++) await flush()
    expect(calls.map((c) => c.cmd)).not.toContain('stamp_preview')
    expect(w.find('[data-testid=stamp-verdict]').text()).toBe('有签章未通过校验')
    expect(w.find('[data-testid=sig-chain]').text()).toBe('否')
    expect(w.find('[data-testid=stamp-signature]').text()).toContain('not under the root')
  })

  it('speaks zh-TW and English', async () => {
    await setLang('zh-TW')
    const { w } = await opened({})
    expect(w.find('h1').text()).toBe('簽章')
    expect(w.findAll('figcaption').map((f) => f.text())).toEqual(['第 1 頁', '第 2 頁'])
    await setLang('en')
    await flush()
    expect(w.find('h1').text()).toBe('Stamp')
    expect(w.find('[data-testid=stamp-place]').text()).toContain('page 2, 252 mm from the left')
  })
})

describe('the key card', () => {
  it('offers 签章 for a key with a seal only', async () => {
    const router = await testRouter('/')
    const withSeal = mount(KeyCard, { props: { k: sealed() }, global: { plugins: [router] } })
    expect(withSeal.find('[data-testid=go-stamp]').attributes('href')).toContain('/stamp?serial=A1')
    const without = mount(KeyCard, { props: { k: key('B2') }, global: { plugins: [router] } })
    expect(without.find('[data-testid=go-stamp]').exists()).toBe(false)
  })
})
