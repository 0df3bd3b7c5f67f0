// The CA's support contacts on every dead end, 环境检测 on Home's empty state and its own
// page, and the Home card's expired-certificate and seal actions, through the mocked shell.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import SupportContacts from '../src/components/SupportContacts.vue'
import ErrorNote from '../src/components/ErrorNote.vue'
import EmptyState from '../src/components/EmptyState.vue'
import KeyCard from '../src/components/KeyCard.vue'
import DoctorView from '../src/views/DoctorView.vue'
import HomeView from '../src/views/HomeView.vue'
import { resetKeys, startKeys } from '../src/keys'
import { setLang } from '../src/i18n'
import { localDateTime } from '../src/format'
import { resetContacts } from '../src/support'
import { CommandError, type Contacts, type DoctorReport } from '../src/ipc'
import { key, pin } from './samples'
import { flush, testRouter } from './helpers'

const FETCHED = '2026-11-30T16:30:00Z'

function contacts(fresh: boolean): Contacts {
  return {
    profile: {
      display_name: '示例 CA',
      hotline: '020-0000-1234',
      online: 'QQ 群 000000000',
      office_hours: '工作日 9:00–17:00',
      website: 'https://ca.example.invalid/',
      new_application: '在 CA 网站提交【新申请】',
      replacement: '在 CA 网站提交【补办】',
    },
    fetched_at: FETCHED,
    ca_url: 'https://ca.example.invalid',
    fresh,
  }
}

const GM3000 =
  '已插入 龙脉 mToken GM3000（055c:e618），但未安装其驱动 libgm3000_pkcs11.so：请安装证书服务机构提供的该介质驱动，然后重新插入 USB Key'

function report(over: Partial<DoctorReport> = {}): DoctorReport {
  return {
    healthy: false,
    verdict: GM3000,
    findings: [
      {
        code: 'driver_missing',
        severity: 'problem',
        message: '已插入 龙脉 mToken GM3000（055c:e618），但未安装其驱动 libgm3000_pkcs11.so',
        fix: '请安装证书服务机构提供的该介质驱动，然后重新插入 USB Key',
        detail: { usb_id: '055c:e618' },
      },
      { code: 'module_ok', severity: 'ok', message: '驱动 libkeyward_sim.so 加载正常', fix: null, detail: {} },
      { code: 'ca_ok', severity: 'ok', message: 'CA 服务连接正常', fix: null, detail: {} },
    ],
    arch: 'x86_64',
    version: '0.1.0',
    usb_keys: [
      {
        device: { name: '1-1', id: '055c:e618', manufacturer: 'Longmai', product: 'mToken GM3000', ccid: false, node: null },
        profile: 'longmai-gm3000',
      },
    ],
    usb_devices: [
      { name: '1-1', id: '055c:e618', manufacturer: 'Longmai', product: 'mToken GM3000', ccid: false, node: null },
    ],
    pcsc: { running: false, socket: '/run/pcscd/pcscd.comm' },
    modules: [],
    ...over,
  }
}

let calls: string[] = []
function shell(answers: Record<string, () => unknown>) {
  calls = []
  mockIPC((cmd) => {
    calls.push(cmd)
    const a = answers[cmd]
    if (!a) throw new Error(`unexpected command ${cmd}`)
    return a()
  })
}

beforeEach(() => {
  setLang('zh-CN')
  resetContacts()
})
afterEach(() => {
  resetKeys()
  clearMocks()
  resetContacts()
})

describe('SupportContacts', () => {
  it('shows the CA’s name, hotline, channel, hours and web address, and the paths asked for', async () => {
    shell({ ca_profile: () => contacts(true) })
    const w = mount(SupportContacts, { props: { paths: ['replacement'] } })
    await flush()
    expect(w.find('[data-testid=support-name]').text()).toBe('示例 CA')
    expect(w.find('[data-testid=support-hotline]').text()).toBe('020-0000-1234')
    expect(w.find('[data-testid=support-online]').text()).toBe('QQ 群 000000000')
    expect(w.find('[data-testid=support-hours]').text()).toBe('工作日 9:00–17:00')
    expect(w.find('[data-testid=support-website]').text()).toBe('https://ca.example.invalid/')
    expect(w.find('[data-testid=support-replacement]').text()).toBe('在 CA 网站提交【补办】')
    expect(w.find('[data-testid=support-new_application]').exists()).toBe(false)
    expect(w.find('[data-testid=support-stale]').exists()).toBe(false)
    expect(w.attributes('data-fresh')).toBe('true')
  })

  it('says when the kept copy was fetched, in local time, while the CA is unreachable', async () => {
    shell({ ca_profile: () => contacts(false) })
    const w = mount(SupportContacts)
    await flush()
    expect(w.find('[data-testid=support-hotline]').text()).toBe('020-0000-1234')
    const stale = w.find('[data-testid=support-stale]').text()
    expect(stale).toContain(`上次获取于 ${localDateTime(FETCHED)}`)
    expect(stale).not.toContain('UTC')
    expect(stale).not.toContain('T16:30')
  })

  it('asks the shell once for several screens, and says what to do with no contacts at all', async () => {
    shell({ ca_profile: () => null })
    const a = mount(SupportContacts)
    const b = mount(SupportContacts)
    await flush()
    expect(calls.filter((c) => c === 'ca_profile')).toHaveLength(1)
    expect(a.find('[data-testid=support-none]').text()).toContain('请联系为您办理证书的 CA')
    expect(b.find('[data-testid=support-hotline]').exists()).toBe(false)
  })

  it('follows the language', async () => {
    await setLang('zh-TW')
    shell({ ca_profile: () => contacts(false) })
    const w = mount(SupportContacts, { props: { paths: ['new_application'] } })
    await flush()
    expect(w.text()).toContain('客服電話')
    expect(w.text()).toContain('新申請')
    expect(w.text()).toContain('上次取得於')
  })
})

describe('ErrorNote', () => {
  it('adds the contacts to an error with no next step, not to a wrong PIN', async () => {
    shell({ ca_profile: () => contacts(false) })
    const offline = mount(ErrorNote, {
      props: { error: new CommandError({ code: 'ca_offline', message: '无法连接 CA 服务，请检查网络后重试。' }) },
    })
    await flush()
    expect(offline.find('[data-testid=support-contacts]').exists()).toBe(true)
    expect(offline.find('[data-testid=support-hotline]').text()).toBe('020-0000-1234')
    expect(offline.find('[data-testid=support-stale]').exists()).toBe(true)

    const wrong = mount(ErrorNote, {
      props: { error: new CommandError({ code: 'pin_incorrect', message: '密码错误' }) },
    })
    await flush()
    expect(wrong.find('[data-testid=support-contacts]').exists()).toBe(false)
  })
})

describe('EmptyState', () => {
  it('says which key is plugged in and what is missing, the plain checks, 补办 and the contacts', async () => {
    shell({ doctor_report: () => report(), ca_profile: () => contacts(true) })
    const w = mount(EmptyState, { global: { plugins: [await testRouter()] } })
    await flush()
    await flush()
    const verdict = w.find('[data-testid=empty-verdict]')
    expect(verdict.text()).toContain(GM3000)
    expect(verdict.attributes('data-code')).toBe('driver_missing')
    expect(verdict.find('a[href="/doctor"]').exists()).toBe(true)
    const checks = w.find('[data-testid=empty-checks]').text()
    expect(checks).toContain('USB 接口')
    expect(checks).toContain('集线器')
    expect(checks).toContain('驱动')
    expect(w.text()).toContain('【补办】')
    expect(w.find('[data-testid=support-replacement]').text()).toBe('在 CA 网站提交【补办】')
    w.unmount()
  })

  it('shows no verdict when the check finds the computer well, or only the CA down', async () => {
    shell({ doctor_report: () => report({ healthy: true, verdict: '一切正常' }), ca_profile: () => null })
    const well = mount(EmptyState, { global: { plugins: [await testRouter()] } })
    await flush()
    expect(well.find('[data-testid=empty-verdict]').exists()).toBe(false)
    well.unmount()
    const caDown = report({
      verdict: '无法连接 CA 服务',
      findings: [{ code: 'ca_unreachable', severity: 'problem', message: '无法连接 CA 服务', fix: null, detail: {} }],
    })
    shell({ doctor_report: () => caDown, ca_profile: () => null })
    const w = mount(EmptyState, { global: { plugins: [await testRouter()] } })
    await flush()
    expect(w.find('[data-testid=empty-verdict]').exists()).toBe(false)
    w.unmount()
  })
})

describe('KeyCard dead ends and seals', () => {
  it('leads an expired certificate to 新申请 with the contacts, never to 忘记密码', async () => {
    shell({ ca_profile: () => contacts(true) })
    const k = key('E1', { next: { action: 'apply_new' } })
    k.certificate = { ...k.certificate!, days_left: -10, renewal: { status: 'expired' } }
    k.token.pin = pin('locked', 0)
    const w = mount(KeyCard, { props: { k }, global: { plugins: [await testRouter()] } })
    await flush()
    expect(w.find('[data-testid=key-next]').text()).toBe('证书已过期，需按【新申请】重新办理')
    expect(w.find('[data-testid=key-days]').text()).toBe('已过期 10 天')
    expect(w.find('a[href="/unlock/E1"]').exists()).toBe(false)
    expect(w.text()).not.toContain('忘记密码')
    expect(w.find('[data-testid=go-apply-seal]').exists()).toBe(false)
    expect(w.find('[data-testid=support-new_application]').text()).toBe('在 CA 网站提交【新申请】')
  })

  it('offers 申请印章 for a certificate without a seal, 安装印章 for one waiting', async () => {
    const router = await testRouter()
    const bare = mount(KeyCard, { props: { k: key('A1') }, global: { plugins: [router] } })
    expect(bare.find('[data-testid=go-apply-seal]').text()).toBe('申请印章')
    expect(bare.find('[data-testid=go-apply-seal]').attributes('href')).toBe('/seal?serial=A1')
    expect(bare.find('[data-testid=key-dead-end]').exists()).toBe(false)

    const waiting = key('A2', {
      standing: { state: 'active', waiting: [{ kind: 'install_seal', business_id: null }] },
      next: { action: 'renew', days_left: 30 },
    })
    const w = mount(KeyCard, { props: { k: waiting }, global: { plugins: [router] } })
    expect(w.find('[data-testid=go-install-seal]').text()).toBe('安装印章')
    expect(w.find('[data-testid=go-apply-seal]').exists()).toBe(false)
  })
})

describe('环境检测', () => {
  it('gives the verdict, every finding by group, the USB inventory, and writes the bundle', async () => {
    shell({
      doctor_report: () => report(),
      ca_profile: () => contacts(true),
      support_bundle: () => ({
        path: '/home/user/Downloads/keyward-support-20261201-080000.tar.gz',
        folder: '/home/user/Downloads',
        bytes: 20480,
        files: ['keyward-support/doctor.json'],
      }),
    })
    const w = mount(DoctorView, { global: { plugins: [await testRouter('/doctor')] } })
    await flush()
    expect(w.find('[data-testid=doctor-verdict]').text()).toContain(GM3000)
    expect(w.find('[data-testid=doctor-verdict]').attributes('data-healthy')).toBe('false')
    const usb = w.find('[data-testid=doctor-group-usb]')
    expect(usb.find('[data-code=driver_missing]').text()).toContain('请安装证书服务机构提供的该介质驱动')
    expect(usb.find('[data-testid=doctor-usb]').text()).toContain('055c:e618')
    expect(w.find('[data-testid=doctor-group-modules] [data-code=module_ok]').exists()).toBe(true)
    expect(w.find('[data-testid=doctor-group-ca] [data-code=ca_ok]').exists()).toBe(true)
    expect(w.find('[data-testid=support-contacts]').exists()).toBe(true)

    await w.find('[data-testid=support-bundle]').trigger('click')
    await flush()
    expect(calls).toContain('support_bundle')
    expect(w.find('[data-testid=bundle-path]').text()).toBe('/home/user/Downloads/keyward-support-20261201-080000.tar.gz')
    expect(w.find('[data-testid=bundle-done]').text()).toContain('20 KB')
  })
})

describe('Home with no driver at all', () => {
  it('is the empty state with 环境检测’s verdict, not a bare error', async () => {
    const asked: unknown[] = []
    mockIPC((cmd, args) => {
      if (cmd === 'token_list') throw { code: 'no_module', message: '没有找到 USB Key 驱动。' }
      if (cmd === 'doctor_report') {
        asked.push(args)
        return report()
      }
      if (cmd === 'ca_profile') return contacts(false)
    }, { shouldMockEvents: true })
    const w = mount(HomeView, { global: { plugins: [await testRouter()] } })
    await startKeys()
    await flush()
    await flush()
    expect(w.find('[data-testid=empty-state]').exists()).toBe(true)
    expect(w.find('[data-testid=empty-verdict]').text()).toContain('龙脉 mToken GM3000（055c:e618）')
    expect(w.find('[data-testid=support-stale]').exists()).toBe(true)
    // Re-checked while no key is in, the computer's side only: the CA is not asked.
    expect(asked.length).toBeGreaterThan(0)
    expect(asked.every((a) => (a as { withCa?: boolean }).withCa === false)).toBe(true)
    w.unmount()
  })
})
