import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import { emit } from '@tauri-apps/api/event'
import KeyCard from '../src/components/KeyCard.vue'
import HomeView from '../src/views/HomeView.vue'
import App from '../src/App.vue'
import FileChoice from '../src/components/FileChoice.vue'
import KeyPicker from '../src/components/KeyPicker.vue'
import { setLang } from '../src/i18n'
import { resetKeys, startKeys, upsert } from '../src/keys'
import { key, pin } from './samples'
import { flush, testRouter } from './helpers'

beforeEach(() => setLang('zh-CN'))
afterEach(() => {
  resetKeys()
  clearMocks()
})

describe('KeyCard', () => {
  it('shows organisation, days left, PIN status and nothing to do', async () => {
    const w = mount(KeyCard, { props: { k: key('A1') }, global: { plugins: [await testRouter()] } })
    expect(w.find('[data-testid=key-org]').text()).toBe('广州示例科技有限公司')
    expect(w.find('[data-testid=key-days]').text()).toBe('剩余 335 天')
    expect(w.find('[data-testid=key-pin]').text()).toBe('正常')
    expect(w.find('[data-testid=key-next]').text()).toBe('无需操作')
    expect(w.find('[data-testid=key-seal]').text()).toBe('未安装')
  })

  it('shows an installed seal by name', async () => {
    const k = key('A1', {
      seal: {
        state: 'present',
        summary: {
          name: '广州示例科技有限公司',
          seal_type: 1,
          es_id: 'ES1',
          created: '2026-11-01T00:00:00Z',
          valid_start: '2026-11-01T00:00:00Z',
          valid_end: '2027-11-01T00:00:00Z',
          image_type: 'PNG',
          image_len: 1024,
        },
      },
    })
    const w = mount(KeyCard, { props: { k }, global: { plugins: [await testRouter()] } })
    expect(w.find('[data-testid=key-seal]').text()).toBe('已安装 · 广州示例科技有限公司')
  })

  it('says renew now inside the window, and offers 忘记密码 for a locked key', async () => {
    const router = await testRouter()
    const renew = mount(KeyCard, {
      props: { k: key('A1', { next: { action: 'renew', days_left: 30 } }) },
      global: { plugins: [router] },
    })
    expect(renew.find('[data-testid=key-next]').text()).toBe('30 天后到期，请立即续期')
    expect(renew.text()).toContain('立即续期')

    const k = key('B2', { next: { action: 'unlock' } })
    k.token.pin = pin('locked', 0)
    const locked = mount(KeyCard, { props: { k }, global: { plugins: [router] } })
    expect(locked.find('[data-testid=key-pin]').text()).toBe('已锁定')
    expect(locked.find('a[href="/unlock/B2"]').exists()).toBe(true)
  })

  it('shows what the CA holds as badges and sends the operator to 安装证书 or 安装印章', async () => {
    const router = await testRouter()
    const k = key('C3', {
      standing: {
        state: 'active',
        waiting: [
          { kind: 'install_certificate', business_id: 'B-1' },
          // From the CA's public read, which names no business.
          { kind: 'install_seal', business_id: null },
        ],
      },
      next: { action: 'install_certificate' },
    })
    const w = mount(KeyCard, { props: { k }, global: { plugins: [router] } })
    expect(w.findAll('[data-testid=key-badges] li').map((b) => b.text())).toEqual(['证书待安装', '印章待安装'])
    expect(w.find('[data-testid=key-next]').text()).toBe('新证书已签发，请安装证书')
    expect(w.find('a[href="/renew?serial=C3"]').text()).toBe('安装证书')

    const seal = mount(KeyCard, {
      props: { k: key('C3', { standing: { state: 'active', waiting: [{ kind: 'install_seal', business_id: 'B-2' }] }, next: { action: 'install_seal' } }) },
      global: { plugins: [router] },
    })
    expect(seal.find('a[href="/seal?serial=C3"]').text()).toBe('安装印章')

    // Fresh from the station: only the CA knows it waits for 激活证书.
    const fresh = mount(KeyCard, {
      props: { k: key('D4', { standing: { state: 'awaiting_activation', waiting: [] }, next: { action: 'activate' } }) },
      global: { plugins: [router] },
    })
    expect(fresh.find('[data-waiting=awaiting_activation]').text()).toBe('待激活')
    expect(fresh.find('a[href="/activate?serial=D4"]').text()).toBe('激活证书')
    expect(mount(KeyCard, { props: { k: key('A1') }, global: { plugins: [router] } }).find('[data-testid=key-badges]').exists()).toBe(false)
  })

  it('shows tries left once wrong PINs were entered, in the chosen language', async () => {
    const k = key('A1')
    k.token.pin = pin('count_low', 7)
    await setLang('en')
    const w = mount(KeyCard, { props: { k }, global: { plugins: [await testRouter()] } })
    expect(w.find('[data-testid=key-pin]').text()).toBe('3 wrong so far, 7 more lock it')
  })
})

describe('HomeView', () => {
  it('shows the empty picture, then keys as they are plugged in and pulled out', async () => {
    mockIPC(
      (cmd) => {
        if (cmd === 'token_list') return []
      },
      { shouldMockEvents: true },
    )
    const w = mount(HomeView, { global: { plugins: [await testRouter()] } })
    await startKeys()
    await flush()
    expect(w.find('[data-testid=empty-state]').exists()).toBe(true)
    expect(w.text()).toContain('请插入 USB Key')

    await emit('token://inserted', key('A1'))
    await emit('token://inserted', key('B2', { next: { action: 'renew', days_left: 12 } }))
    await flush()
    const cards = w.findAll('[data-testid=key-card]')
    expect(cards.map((c) => c.attributes('data-serial'))).toEqual(['B2', 'A1'])
    expect(w.find('[data-testid=key-count]').text()).toBe('共 2 把')

    await emit('token://removed', { serial: 'B2' })
    await flush()
    expect(w.findAll('[data-testid=key-card]').map((c) => c.attributes('data-serial'))).toEqual(['A1'])
  })

  it('lists the keys even when the shell sends no key events', async () => {
    mockIPC((cmd) => {
      if (cmd === 'plugin:event|listen') throw new Error('no events')
      if (cmd === 'token_list') return [key('A1')]
    })
    const w = mount(HomeView, { global: { plugins: [await testRouter()] } })
    await startKeys()
    await flush()
    expect(w.findAll('[data-testid=key-card]').map((c) => c.attributes('data-serial'))).toEqual(['A1'])
  })

  it('says what to do when no driver loads', async () => {
    mockIPC(
      () => {
        throw { code: 'no_module', message: '没有找到 USB Key 驱动。请先安装 CA 提供的证书驱动。' }
      },
      { shouldMockEvents: true },
    )
    const w = mount(HomeView, { global: { plugins: [await testRouter()] } })
    await startKeys()
    await flush()
    // The empty state, saying why (环境检测 could not tell more here).
    expect(w.find('[data-testid=empty-state]').exists()).toBe(true)
    expect(w.find('[data-testid=empty-verdict]').attributes('data-code')).toBe('no_module')
    expect(w.find('[data-testid=empty-verdict]').text()).toContain('没有找到 USB Key 驱动')
  })
})

describe('navigation badges', () => {
  it('count the keys with an install waiting, live as the CA answers arrive', async () => {
    mockIPC(
      (cmd) => {
        if (cmd === 'token_list') return [key('A1')]
      },
      { shouldMockEvents: true },
    )
    const w = mount(App, { global: { plugins: [await testRouter()] } })
    await startKeys()
    await flush()
    expect(w.find('[data-testid=nav-badge-renew]').exists()).toBe(false)

    // The CA's answer arrives as a change of the key. Its public read names no business
    // (business_id null); what this computer follows does.
    await emit(
      'token://changed',
      key('A1', {
        standing: { state: 'active', waiting: [{ kind: 'install_certificate', business_id: null }] },
        next: { action: 'install_certificate' },
      }),
    )
    await emit(
      'token://inserted',
      key('B2', { standing: { state: 'active', waiting: [{ kind: 'install_seal', business_id: 'B-9' }] }, next: { action: 'install_seal' } }),
    )
    await flush()
    expect(w.find('[data-testid=nav-badge-renew]').text()).toBe('1')
    expect(w.find('[data-testid=nav-badge-seal]').text()).toBe('1')

    await emit('token://removed', { serial: 'B2' })
    await flush()
    expect(w.find('[data-testid=nav-badge-seal]').exists()).toBe(false)
  })
})

describe('FileChoice', () => {
  it("has Keyward's own button in the chosen language, which opens the hidden file input", async () => {
    for (const [lang, label, none] of [
      ['zh-CN', '选择文件', '未选择文件'],
      ['zh-TW', '選擇檔案', '未選擇檔案'],
      ['en', 'Choose file', 'No file chosen'],
    ] as const) {
      await setLang(lang)
      const w = mount(FileChoice, { props: { accept: ['image/png'], testid: 'scan' } })
      expect(w.find('[data-testid=scan-button]').text()).toBe(label)
      expect(w.find('[data-testid=file-name]').text()).toBe(none)
      const input = w.find('input[type=file]')
      expect(input.classes()).toContain('file-input')
      let opened = 0
      ;(input.element as HTMLInputElement).click = () => void opened++
      await w.find('[data-testid=scan-button]').trigger('click')
      expect(opened).toBe(1)
      w.unmount()
    }
  })
})

describe('KeyPicker', () => {
  it('lists only the keys the page applies to, with their state, the chosen one not a main button', async () => {
    upsert(key('A1'))
    upsert(key('B2'))
    upsert(key('C3', { certificate: null }))
    const w = mount(KeyPicker, { props: { modelValue: 'B2', applies: (k) => !!k.certificate } })
    const buttons = w.findAll('[data-testid=key-picker] button')
    expect(buttons.map((b) => b.attributes('data-serial')).sort()).toEqual(['A1', 'B2'])
    const chosen = w.find('[data-serial=B2]')
    expect(chosen.classes()).toContain('selected')
    expect(chosen.classes()).not.toContain('primary')
    expect(chosen.attributes('aria-pressed')).toBe('true')
    expect(chosen.find('.key-state').text()).toBe('剩余 335 天')
  })

  it('shows no picker for the one key that applies', async () => {
    upsert(key('A1'))
    upsert(key('C3', { certificate: null }))
    const w = mount(KeyPicker, { props: { modelValue: '', applies: (k) => !!k.certificate } })
    await flush()
    expect(w.find('[data-testid=key-picker]').exists()).toBe(false)
    expect(w.find('[data-testid=the-key]').text()).toContain('A1')
  })
})
