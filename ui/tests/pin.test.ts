import { describe, expect, it } from 'vitest'
import { checklist, strength } from '../src/pin'
import { pinInfo } from './samples'

const policy = pinInfo('A').policy

describe('the new-PIN checklist', () => {
  it('ticks each rule of the policy as it is met', () => {
    const failed = (pin: string, old = '', again?: string) =>
      checklist(policy, pin, old, again)
        .filter((c) => !c.ok)
        .map((c) => c.id)
    expect(failed('abc')).toEqual(['min', 'upper', 'digit', 'special'])
    expect(failed('Abcdefg1!')).toEqual([])
    expect(failed('Abcdefg1!', 'Abcdefg1!')).toEqual(['differs'])
    expect(failed('Abcdefg1!', 'old', 'Abcdefg1?')).toEqual(['same'])
    expect(failed('Abc defg1!')).toEqual(['ascii'])
    expect(failed('密码Abcdefg1!')).toEqual(['ascii'])
  })

  it('adds the key’s own maximum when it has one', () => {
    const ids = checklist({ ...policy, max_len: 10 }, 'Abcdefg1!xyz').filter((c) => !c.ok).map((c) => c.id)
    expect(ids).toEqual(['max'])
  })

  it('rates strength', () => {
    expect(strength('abc')).toBe('weak')
    expect(strength('Abcdefg1')).toBe('fair')
    expect(strength('Abcdefg1!xyz')).toBe('strong')
  })
})
