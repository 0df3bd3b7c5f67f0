import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import SettingsView from '../src/views/SettingsView.vue'
import CertificateView from '../src/views/CertificateView.vue'
import { lang, setLang } from '../src/i18n'
import { resetKeys, upsert } from '../src/keys'
import type { DriverReport } from '../src/ipc'
import { details, key } from './samples'
import { flush, testRouter } from './helpers'

beforeEach(() => setLang('zh-CN'))
afterEach(() => {
  resetKeys()
  clearMocks()
})

const drivers: DriverReport[] = [
  {
    path: '/usr/lib/libkeyward_sim.so',
    source: { kind: 'environment' },
    loaded: true,
    error: null,
    manufacturer: 'Keyward',
    description: 'Keyward USB key simulator',
    version: '0.1',
  },
  {
    path: '/usr/lib/libbroken.so',
    source: { kind: 'profile', detail: 'NETCA' },
    loaded: false,
    error: 'cannot use PKCS#11 module: C_Initialize answered CKR_GENERAL_ERROR',
    manufacturer: null,
    description: null,
    version: null,
  },
]

describe('设置与关于', () => {
  it('lists the drivers found and why the others failed, and the version', async () => {
    mockIPC((cmd) => {
      if (cmd === 'driver_list') return drivers
      if (cmd === 'app_info') return { version: '0.1.0', log_dir: '/tmp/logs', module_env: null, watching: [] }
    })
    const w = mount(SettingsView, { global: { plugins: [await testRouter('/settings')] } })
    await flush()
    const rows = w.findAll('[data-testid=driver]')
    expect(rows).toHaveLength(2)
    expect(rows[0].text()).toContain('可用')
    expect(rows[1].text()).toContain('CKR_GENERAL_ERROR')
    expect(rows[1].text()).toContain('驱动配置 NETCA')
    expect(w.find('[data-testid=version]').text()).toBe('Keyward 0.1.0')
  })

  it('saves the language through the shell and switches at once, keeping the CA settings', async () => {
    const saved: unknown[] = []
    mockIPC((cmd, args) => {
      if (cmd === 'settings_get') return { language: 'zh-CN', ca_url: 'https://ca.example:8443', ca_root: null }
      if (cmd === 'ca_root_show') return null
      if (cmd === 'settings_set') {
        saved.push(args)
        return (args as { settings: unknown }).settings
      }
      if (cmd === 'driver_list') return []
      if (cmd === 'app_info') return { version: '0.1.0', log_dir: '/tmp', module_env: null, watching: [] }
    })
    const w = mount(SettingsView, { global: { plugins: [await testRouter('/settings')] } })
    await flush()
    await w.find('[data-lang=zh-TW]').trigger('click')
    await flush()
    expect(saved).toEqual([{ settings: { language: 'zh-TW', ca_url: 'https://ca.example:8443', ca_root: null } }])
    expect(lang.value).toBe('zh-TW')
    expect(w.find('h1').text()).toBe('設定與關於')
  })

  it('shows the pinned CA root by subject and SHA-256, and saves the CA address', async () => {
    const saved: unknown[] = []
    mockIPC((cmd, args) => {
      if (cmd === 'settings_get') return { language: 'zh-CN', ca_url: null, ca_root: '/etc/keyward/root.pem' }
      if (cmd === 'ca_root_show') return { subject: 'CN=Keyward Demo Root CA', sha256: 'AB'.repeat(32), not_after: '2036-01-01T00:00:00Z' }
      if (cmd === 'settings_set') {
        saved.push(args)
        return (args as { settings: unknown }).settings
      }
      if (cmd === 'driver_list') return []
      if (cmd === 'app_info') return { version: '0.1.0', log_dir: '/tmp', module_env: null, watching: [] }
    })
    const w = mount(SettingsView, { global: { plugins: [await testRouter('/settings')] } })
    await flush()
    await flush()
    expect(w.find('[data-testid=ca-root-info]').text()).toContain('CN=Keyward Demo Root CA')
    expect(w.find('[data-testid=ca-root-sha256]').text()).toBe('AB'.repeat(32))
    await w.find('[data-testid=ca-url]').setValue(' https://127.0.0.1:8443 ')
    await w.find('[data-testid=ca-settings]').trigger('submit')
    await flush()
    expect(saved).toEqual([
      { settings: { language: 'zh-CN', ca_url: 'https://127.0.0.1:8443', ca_root: '/etc/keyward/root.pem' } },
    ])
  })

  it('says plainly when the root file is not a certificate', async () => {
    mockIPC((cmd) => {
      if (cmd === 'settings_get') return { language: 'zh-CN', ca_url: null, ca_root: '/tmp/x.pem' }
      if (cmd === 'ca_root_show') throw { code: 'ca_root', message: '无法读取 CA 根证书文件', detail: '/tmp/x.pem' }
      if (cmd === 'driver_list') return []
      if (cmd === 'app_info') return { version: '0.1.0', log_dir: '/tmp', module_env: null, watching: [] }
    })
    const w = mount(SettingsView, { global: { plugins: [await testRouter('/settings')] } })
    await flush()
    await flush()
    expect(w.find('[data-testid=error][data-code=ca_root]').text()).toContain('根证书')
  })
})

describe('我的证书', () => {
  it('shows the details with copy buttons, the chain and the PIN state', async () => {
    upsert(key('A1'))
    mockIPC((cmd, args) => {
      if (cmd === 'cert_show') return details((args as { serial: string }).serial)
    })
    const w = mount(CertificateView, {
      props: { serial: 'A1' },
      global: { plugins: [await testRouter('/cert/A1')] },
    })
    await flush()
    expect(w.find('[data-testid=cert-org]').text()).toContain('91440101MA59ABCDEX')
    expect(w.findAll('[data-testid=cert-org] button.copy').length).toBeGreaterThan(5)
    expect(w.find('[data-testid=cert-chain]').text()).toContain('Keyward Test Issuing CA')
    expect(w.find('[data-testid=cert-pin-state]').text()).toBe('正常')
  })

  it('says what to do when the key was pulled out', async () => {
    upsert(key('A1'))
    mockIPC(() => {
      throw { code: 'key_removed', message: 'USB Key 已被拔出。请插回后重新操作，未完成的操作不会自动重做。' }
    })
    const w = mount(CertificateView, {
      props: { serial: 'A1' },
      global: { plugins: [await testRouter('/cert/A1')] },
    })
    await flush()
    expect(w.find('[data-testid=error]').attributes('data-code')).toBe('key_removed')
  })
})
