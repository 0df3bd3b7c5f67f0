import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import { emit } from '@tauri-apps/api/event'
import KeyCard from '../src/components/KeyCard.vue'
import HomeView from '../src/views/HomeView.vue'
import { setLang } from '../src/i18n'
import { resetKeys, startKeys } from '../src/keys'
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

  it('shows tries left once wrong PINs were entered, in the chosen language', async () => {
    const k = key('A1')
    k.token.pin = pin('count_low', 7)
    setLang('en')
    const w = mount(KeyCard, { props: { k }, global: { plugins: [await testRouter()] } })
    expect(w.find('[data-testid=key-pin]').text()).toBe('7 tries left')
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
    expect(w.find('[data-testid=error]').attributes('data-code')).toBe('no_module')
  })
})
