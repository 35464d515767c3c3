import { describe, expect, it } from 'vitest'
import { errorCodes, fieldLocation, isDependencyFailure, statusOf } from '../../src/shared/errors.ts'

describe('application errors', () => {
  it('gives each status used to one code only, except the two kinds of bad request', () => {
    const byStatus = new Map<number, string[]>()
    for (const code of errorCodes)
      byStatus.set(statusOf(code), [...(byStatus.get(statusOf(code)) ?? []), code])
    expect(byStatus.get(400)).toEqual(['VALIDATION_FAILED', 'MALFORMED_REQUEST'])
    for (const [status, codes] of byStatus) if (status !== 400) expect(codes).toHaveLength(1)
  })

  it('turns a field path into a dotted name and an escaped JSON pointer', () => {
    expect(fieldLocation(['address', 'lines', 0])).toEqual({
      field: 'address.lines.0',
      pointer: '/address/lines/0',
    })
    expect(fieldLocation(['a/b', 'c~d'])).toEqual({ field: 'a/b.c~d', pointer: '/a~1b/c~0d' })
    expect(fieldLocation([])).toEqual({ field: '', pointer: '' })
  })

  it('tells dependency outages from programmer errors', () => {
    const selection = Object.assign(new Error('server selection timed out'), {
      name: 'MongoServerSelectionError',
    })
    expect(isDependencyFailure(selection)).toBe(true)
    expect(
      isDependencyFailure(new Error("Stream isn't writeable and enableOfflineQueue options is false")),
    ).toBe(true)
    expect(isDependencyFailure(new Error('connect ECONNREFUSED 127.0.0.1:6379'))).toBe(true)
    const busy = new Error(
      '[msg_insert.go:168 handler.(*Handler).MsgInsert] [collection.go:135 sqlite.(*collection).InsertAll.func1] database is locked (5) (SQLITE_BUSY)',
    )
    busy.name = 'MongoServerError'
    expect(isDependencyFailure(busy)).toBe(true)
    expect(isDependencyFailure(new TypeError('x is not a function'))).toBe(false)
    expect(isDependencyFailure('a string')).toBe(false)
  })
})
