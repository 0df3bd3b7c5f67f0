import { afterEach, describe, expect, it } from 'vitest'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'
import { emit } from '@tauri-apps/api/event'
import {
  CommandError,
  ERROR_CODES,
  onKeyEvents,
  pinChange,
  progressList,
  tokenList,
  unlockApply,
  unlockSendCode,
  toCommandError,
  type KeyView,
} from '../src/ipc'
import { key, pin } from './samples'

afterEach(() => clearMocks())

describe('the IPC layer', () => {
  it('calls the noun-first commands with camelCase arguments', async () => {
    const calls: [string, unknown][] = []
    mockIPC((cmd, args) => {
      calls.push([cmd, args])
      if (cmd === 'token_list') return [key('A1')]
      if (cmd === 'pin_change') return pin()
    })
    const list = await tokenList()
    expect(list[0].token.serial).toBe('A1')
    await pinChange({ serial: 'A1', oldPin: 'o', newPin: 'n', newPinAgain: 'n', confirmFinalTry: false })
    expect(calls[0][0]).toBe('token_list')
    expect(calls[1]).toEqual([
      'pin_change',
      { serial: 'A1', oldPin: 'o', newPin: 'n', newPinAgain: 'n', confirmFinalTry: false },
    ])
  })

  it('turns a rejected command into a CommandError with its code and PIN status', async () => {
    mockIPC(() => {
      throw { code: 'pin_incorrect', message: '证书密码错误，已输错 3 次，再错 7 次将锁定。', pin: pin('count_low', 7) }
    })
    const err = await tokenList().catch((e) => e)
    expect(err).toBeInstanceOf(CommandError)
    expect(err.code).toBe('pin_incorrect')
    expect(err.message).toContain('7')
    expect(err.pin.user_tries_left).toBe(7)
  })

  it('sends 办理进度查询 its PIN, and keeps another requester’s unlock as data', async () => {
    const calls: [string, unknown][] = []
    mockIPC((cmd, args) => {
      calls.push([cmd, args])
      if (cmd === 'progress_list') return { businesses: [], resumable: [] }
      if (cmd === 'unlock_send_code') return { phone_masked: '138****8001', reference: '07', expires_at: '', resend_after: '' }
      if (cmd === 'unlock_apply') {
        throw {
          code: 'unlock_by_other',
          message: '…',
          open_business: { kind: 'unlock', requester_masked: '王*', phone_masked: '139****0002', opened_at: '2026-11-30T01:15:00Z' },
        }
      }
    })
    await progressList({ serial: 'A1', pin: 'p', confirmFinalTry: false })
    expect(calls[0]).toEqual(['progress_list', { serial: 'A1', pin: 'p', confirmFinalTry: false }])
    expect((await unlockSendCode('A1')).reference).toBe('07')
    const err = await unlockApply({ serial: 'A1', name: 'n', idNumber: 'i', phone: 'p' }).catch((e) => e)
    expect(err.code).toBe('unlock_by_other')
    expect(err.open_business.requester_masked).toBe('王*')
    // The trust model's codes are known codes.
    for (const c of ['code_not_requested', 'ca_rate_limited', 'ca_root_bundle', 'ca_url_insecure']) {
      expect(toCommandError({ code: c, message: 'x' }).code).toBe(c)
    }
  })

  it('never lets an unknown shape through as a known code', () => {
    expect(toCommandError('boom').code).toBe('internal')
    expect(toCommandError({ code: 'made_up', message: 'x' }).code).toBe('internal')
    expect(ERROR_CODES).toContain('pin_final_try')
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length)
  })

  it('delivers key events until unsubscribed', async () => {
    mockIPC(() => undefined, { shouldMockEvents: true })
    const seen: string[] = []
    const stop = await onKeyEvents({
      inserted: (k: KeyView) => seen.push(`+${k.token.serial}`),
      removed: (s: string) => seen.push(`-${s}`),
      changed: (k: KeyView) => seen.push(`~${k.token.serial}`),
    })
    await emit('token://inserted', key('A1'))
    await emit('token://changed', key('A1'))
    await emit('token://removed', { serial: 'A1' })
    stop()
    await emit('token://inserted', key('B2'))
    expect(seen).toEqual(['+A1', '~A1', '-A1'])
  })
})
