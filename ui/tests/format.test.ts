import { describe, expect, it } from 'vitest'
import { clock, date, dateTime } from '../src/format'

// 17:30 UTC on 22 October is 01:30 on the 23rd in Beijing: the date the operator reads is
// the 23rd, never the UTC date.
describe('local time', () => {
  const at = '2026-10-22T17:30:00Z'

  it('gives Beijing dates and times across the UTC date line', () => {
    expect(date(at, 'Asia/Shanghai')).toBe('2026-10-23')
    expect(dateTime(at, 'Asia/Shanghai')).toBe('2026-10-23 01:30')
    expect(date('2026-10-22T15:59:59Z', 'Asia/Shanghai')).toBe('2026-10-22')
    expect(date('2026-10-22T16:00:00Z', 'Asia/Shanghai')).toBe('2026-10-23')
    // The CA's instants carry fractions and offsets too.
    expect(dateTime('2026-10-22T22:49:41.123456Z', 'Asia/Shanghai')).toBe('2026-10-23 06:49')
    expect(dateTime('2026-10-23T06:49:41+08:00', 'Asia/Shanghai')).toBe('2026-10-23 06:49')
  })

  it('follows the zone it is given, and says nothing of UTC', () => {
    expect(date(at, 'UTC')).toBe('2026-10-22')
    expect(dateTime(at, 'UTC')).toBe('2026-10-22 17:30')
    expect(dateTime(at, 'Asia/Taipei')).toBe('2026-10-23 01:30')
    expect(dateTime(at)).not.toContain('UTC')
    expect(dateTime(at)).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/)
  })

  it('shows the clock alone for an instant on the same Beijing day', () => {
    // 09:00 Beijing on the 23rd is 01:00 UTC: the 23rd in Beijing, the 23rd for the instant.
    expect(clock(at, 'Asia/Shanghai', new Date('2026-10-23T01:00:00Z'))).toBe('01:30')
    // 20:00 UTC on the 22nd is 04:00 on the 23rd in Beijing: same day there, another in UTC.
    expect(clock(at, 'Asia/Shanghai', new Date('2026-10-22T20:00:00Z'))).toBe('01:30')
    expect(clock(at, 'UTC', new Date('2026-10-23T01:00:00Z'))).toBe('2026-10-22 17:30')
  })

  it('leaves what is not an instant as it is', () => {
    expect(date('not a date', 'Asia/Shanghai')).toBe('not a date')
  })
})
