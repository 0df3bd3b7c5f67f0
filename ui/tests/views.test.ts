import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import SettingsView from '../src/views/SettingsView.vue'
import CertificateView from '../src/views/CertificateView.vue'
import { lang, setLang } from '../src/i18n'
import { resetKeys, upsert } from '../src/keys'
import type { DriverReport, RootInfo, Settings } from '../src/ipc'
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
      if (cmd === 'app_info') return { version: '0.1.0 (0123456789ab)', log_dir: '/tmp/logs', module_env: null, watching: [] }
    })
    const w = mount(SettingsView, { global: { plugins: [await testRouter('/settings')] } })
    await flush()
    const rows = w.findAll('[data-testid=driver]')
    expect(rows).toHaveLength(2)
    expect(rows[0].text()).toContain('可用')
    expect(rows[1].text()).toContain('CKR_GENERAL_ERROR')
    expect(rows[1].text()).toContain('驱动配置 NETCA')
    expect(w.find('[data-testid=version]').text()).toBe('Keyward 0.1.0 (0123456789ab)')
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
    // Traditional Chinese is a chunk of its own, loaded on the first switch to it.
    await vi.waitFor(() => expect(lang.value).toBe('zh-TW'))
    expect(w.find('h1').text()).toBe('設定與關於')
  })

  const FP = Array.from({ length: 32 }, (_, i) => (i * 7 + 16).toString(16).toUpperCase().padStart(2, '0')).join(':')
  const rootInfo = (over: Partial<RootInfo> = {}): RootInfo => ({
    path: '/home/clerk/.config/keyward/ca-root-1017.pem',
    subject: 'CN=Keyward Demo Root CA, O=Keyward',
    issuer: 'CN=Keyward Demo Root CA, O=Keyward',
    sha256: FP,
    not_before: '2026-01-01T00:00:00Z',
    not_after: '2036-01-01T00:00:00Z',
    is_ca: true,
    copied_from: null,
    from_env: false,
    ...over,
  })

  /** A shell with settings as given, answering settings_set like the real one on the URL. */
  function settingsShell(initial: Settings, answers: Record<string, (args: Record<string, unknown>) => unknown> = {}) {
    const calls: { cmd: string; args: Record<string, unknown> }[] = []
    let current = initial
    mockIPC((cmd, raw) => {
      const args = (raw ?? {}) as Record<string, unknown>
      calls.push({ cmd, args })
      if (answers[cmd]) return answers[cmd](args)
      if (cmd === 'settings_get') return current
      if (cmd === 'settings_set') {
        const next = args.settings as Settings
        if (next.ca_url?.startsWith('http://')) {
          throw { code: 'ca_url_insecure', message: 'CA 服务地址必须以 https:// 开头：http:// 不加密，也无法核实对方是不是您的 CA。' }
        }
        current = next
        return next
      }
      if (cmd === 'driver_list') return []
      if (cmd === 'app_info') return { version: '0.1.0', log_dir: '/tmp', module_env: null, watching: [] }
    })
    return calls
  }

  async function settingsPage() {
    const w = mount(SettingsView, { global: { plugins: [await testRouter('/settings')] } })
    await flush()
    await flush()
    return w
  }

  it('shows the pinned CA root by subject, SHA-256 fingerprint and where its copy came from', async () => {
    settingsShell(
      { language: 'zh-CN', ca_url: 'https://ca.example.cn:8443', ca_root: rootInfo().path, ca_root_origin: '/media/u/root.pem' },
      { ca_root_show: () => rootInfo({ copied_from: '/media/u/root.pem' }) },
    )
    const w = await settingsPage()
    expect(w.find('[data-testid=ca-root-subject]').text()).toBe('CN=Keyward Demo Root CA, O=Keyward')
    expect(w.find('[data-testid=ca-root-sha256]').text()).toBe(FP)
    const source = w.find('[data-testid=ca-root-source]').text()
    expect(source).toContain('副本')
    expect(source).toContain('/media/u/root.pem')
    expect((w.find('[data-testid=ca-root-path]').element as HTMLInputElement).labels?.[0]?.textContent).toContain('更换根证书')
  })

  it('says a root named by KEYWARD_CA_ROOT is read where it is, and when none is pinned', async () => {
    settingsShell(
      { language: 'zh-CN', ca_url: null, ca_root: '/srv/ca/root.crt' },
      { ca_root_show: () => rootInfo({ path: '/srv/ca/root.crt', from_env: true }) },
    )
    const w = await settingsPage()
    expect(w.find('[data-testid=ca-root-source]').text()).toContain('KEYWARD_CA_ROOT')
    clearMocks()
    settingsShell({ language: 'zh-CN', ca_url: null, ca_root: null }, { ca_root_show: () => null })
    const none = await settingsPage()
    expect(none.find('[data-testid=ca-root-none]').text()).toContain('尚未固定根证书')
  })

  it('saves the CA address alone; a plain-http one is refused with the shell’s words', async () => {
    const calls = settingsShell(
      { language: 'zh-CN', ca_url: null, ca_root: '/etc/keyward/root.pem' },
      { ca_root_show: () => rootInfo() },
    )
    const w = await settingsPage()
    await w.find('[data-testid=ca-url]').setValue('http://ca.example.cn')
    await w.find('[data-testid=ca-settings]').trigger('submit')
    await flush()
    expect(w.find('[data-testid=ca-settings] [data-testid=error][data-code=ca_url_insecure]').text()).toContain('https://')
    await w.find('[data-testid=ca-url]').setValue(' https://127.0.0.1:8443 ')
    await w.find('[data-testid=ca-settings]').trigger('submit')
    await flush()
    const saved = calls.filter((c) => c.cmd === 'settings_set').map((c) => c.args)
    expect(saved[saved.length - 1]).toEqual({
      settings: { language: 'zh-CN', ca_url: 'https://127.0.0.1:8443', ca_root: '/etc/keyward/root.pem' },
    })
    expect(w.find('[data-testid=ca-settings] [data-testid=error]').exists()).toBe(false)
  })

  it('pins a new root only after its fingerprint was shown and confirmed, with that fingerprint', async () => {
    let pinned: RootInfo | null = null
    const chosen = rootInfo({ path: '/media/u/new-root.pem', subject: 'CN=Keyward New Root CA', is_ca: true })
    const calls = settingsShell(
      { language: 'zh-CN', ca_url: 'https://ca.example.cn', ca_root: null },
      {
        ca_root_show: () => pinned,
        ca_root_inspect: () => chosen,
      },
    )
    const w = await settingsPage()
    const sets = () => calls.filter((c) => c.cmd === 'settings_set')
    expect(w.find('[data-testid=ca-root-inspect]').attributes('disabled')).toBeDefined()
    await w.find('[data-testid=ca-root-path]').setValue(' /media/u/new-root.pem ')
    await w.find('[data-testid=ca-root] form').trigger('submit')
    await flush()
    expect(calls.filter((c) => c.cmd === 'ca_root_inspect').map((c) => c.args)).toEqual([{ path: '/media/u/new-root.pem' }])
    // Shown in Keyward's own window, nothing saved yet.
    const confirm = w.find('[data-testid=ca-root-confirm]')
    expect(confirm.find('[data-testid=ca-root-confirm-subject]').text()).toBe('CN=Keyward New Root CA')
    const groups = confirm.findAll('[data-testid=ca-root-confirm-sha256] span').map((g) => g.text())
    expect(groups).toHaveLength(4)
    expect(groups.join('')).toBe(FP)
    expect(confirm.find('[data-testid=ca-root-same]').exists()).toBe(false)
    expect(confirm.text()).toContain('逐组核对')
    expect(sets()).toHaveLength(0)

    // Cancelled: nothing saved; the operator checks again.
    await w.find('[data-testid=ca-root-cancel]').trigger('click')
    expect(w.find('[data-testid=ca-root-confirm]').exists()).toBe(false)
    expect(sets()).toHaveLength(0)
    await w.find('[data-testid=ca-root] form').trigger('submit')
    await flush()

    pinned = rootInfo({ subject: 'CN=Keyward New Root CA', copied_from: '/media/u/new-root.pem' })
    await w.find('[data-testid=ca-root-confirm-button]').trigger('click')
    await flush()
    await flush()
    expect(sets().map((c) => c.args)).toEqual([
      {
        settings: { language: 'zh-CN', ca_url: 'https://ca.example.cn', ca_root: '/media/u/new-root.pem' },
        rootSha256: FP,
      },
    ])
    expect(w.find('[data-testid=ca-root-pinned]').text()).toBe('根证书已固定。')
    expect(w.find('[data-testid=ca-root-subject]').text()).toBe('CN=Keyward New Root CA')
    expect(w.find('[data-testid=ca-root-confirm]').exists()).toBe(false)
  })

  it('warns when the chosen file is not a CA certificate', async () => {
    settingsShell(
      { language: 'zh-CN', ca_url: null, ca_root: null },
      { ca_root_show: () => null, ca_root_inspect: () => rootInfo({ is_ca: false }) },
    )
    const w = await settingsPage()
    await w.find('[data-testid=ca-root-path]').setValue('/tmp/server.pem')
    await w.find('[data-testid=ca-root] form').trigger('submit')
    await flush()
    expect(w.find('[data-testid=ca-root-not-ca]').text()).toContain('不是一张 CA 证书')
  })

  it('refuses a bundle or a large file with the shell’s words, and never asks to confirm it', async () => {
    const calls = settingsShell(
      { language: 'zh-CN', ca_url: null, ca_root: null },
      {
        ca_root_show: () => null,
        ca_root_inspect: (args) => {
          if (String(args.path).includes('bundle')) {
            throw { code: 'ca_root_bundle', message: '这个文件包含 3 张证书。Keyward 只信任一张根证书：请选择只含 CA 根证书的文件，不要选择证书链或证书包。未作任何更改。' }
          }
          throw { code: 'ca_root_too_large', message: '这个文件超过 64 KB，不是一张根证书。' }
        },
      },
    )
    const w = await settingsPage()
    await w.find('[data-testid=ca-root-path]').setValue('/tmp/bundle.pem')
    await w.find('[data-testid=ca-root] form').trigger('submit')
    await flush()
    expect(w.find('[data-testid=ca-root] [data-testid=error][data-code=ca_root_bundle]').text()).toContain('3 张证书')
    expect(w.find('[data-testid=ca-root-confirm]').exists()).toBe(false)
    await w.find('[data-testid=ca-root-path]').setValue('/tmp/huge.pem')
    await w.find('[data-testid=ca-root] form').trigger('submit')
    await flush()
    expect(w.find('[data-testid=ca-root] [data-testid=error][data-code=ca_root_too_large]').text()).toContain('64 KB')
    expect(calls.some((c) => c.cmd === 'settings_set')).toBe(false)
  })

  it('shows the shell’s refusal when the file changed after it was confirmed', async () => {
    settingsShell(
      { language: 'zh-CN', ca_url: null, ca_root: null },
      {
        ca_root_show: () => null,
        ca_root_inspect: () => rootInfo(),
        settings_set: () => {
          throw { code: 'ca_root_changed', message: '根证书文件在您核对之后发生了变化，指纹与您确认的不一致，因此没有固定它。' }
        },
      },
    )
    const w = await settingsPage()
    await w.find('[data-testid=ca-root-path]').setValue('/tmp/root.pem')
    await w.find('[data-testid=ca-root] form').trigger('submit')
    await flush()
    await w.find('[data-testid=ca-root-confirm-button]').trigger('click')
    await flush()
    expect(w.find('[data-testid=error][data-code=ca_root_changed]').text()).toContain('发生了变化')
    expect(w.find('[data-testid=ca-root-pinned]').exists()).toBe(false)
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
    // 忘记密码 first on the page, before the certificate; the raw subject and the PKCS#11 URI
    // folded away under 技术信息, with their copy buttons.
    const html = w.html()
    expect(html.indexOf('data-testid="forgot-pin"')).toBeLessThan(html.indexOf('data-testid="cert-org"'))
    expect(w.find('[data-testid=cert-org]').text()).not.toContain('pkcs11:')
    const tech = w.find('[data-testid=cert-technical]')
    expect(tech.element.tagName).toBe('DETAILS')
    expect((tech.element as HTMLDetailsElement).open).toBe(false)
    expect(tech.find('summary').text()).toBe('技术信息')
    expect(tech.text()).toContain('pkcs11:')
    expect(tech.findAll('button.copy').length).toBeGreaterThan(5)
    expect(w.find('[data-testid=cert-chain]').text()).toContain('Keyward Test Issuing CA')
    expect(w.find('[data-testid=cert-pin-state]').text()).toBe('正常')
    expect(w.text()).not.toContain('UTC')
  })

  it('exports the certificate to the file named, PEM or DER, and says where', async () => {
    upsert(key('A1'))
    const calls: { cmd: string; args: unknown }[] = []
    mockIPC((cmd, args) => {
      calls.push({ cmd, args })
      if (cmd === 'cert_show') return details((args as { serial: string }).serial)
      if (cmd === 'cert_export_path') return `/home/clerk/文档/广州示例科技有限公司-证书.${(args as { format: string }).format === 'pem' ? 'pem' : 'cer'}`
      if (cmd === 'cert_export') return { path: (args as { path: string }).path, bytes: 1234 }
    })
    const w = mount(CertificateView, {
      props: { serial: 'A1' },
      global: { plugins: [await testRouter('/cert/A1')] },
    })
    await flush()
    await w.find('[data-testid=export-open]').trigger('click')
    await flush()
    const path = w.find('[data-testid=export-path]').element as HTMLInputElement
    expect(path.value).toBe('/home/clerk/文档/广州示例科技有限公司-证书.pem')
    await w.find('[data-testid=export-der]').setValue(true)
    await flush()
    expect(path.value.endsWith('.cer')).toBe(true)
    await w.find('[data-testid=export-form]').trigger('submit')
    await flush()
    const sent = calls.find((c) => c.cmd === 'cert_export')!.args as Record<string, unknown>
    expect(sent).toMatchObject({ serial: 'A1', format: 'der', path: '/home/clerk/文档/广州示例科技有限公司-证书.cer' })
    expect(w.find('[data-testid=export-done]').text()).toContain('广州示例科技有限公司-证书.cer')
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
