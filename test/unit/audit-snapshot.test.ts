import { describe, expect, it } from 'vitest'
import { outcomeOf, timeBound } from '../../src/modules/audit/audit.service.ts'
import { fromSnapshot, REDACTED, redact, snapshot } from '../../src/modules/audit/audit.snapshot.ts'
import { uuidv7 } from '../../src/shared/ids.ts'

describe('audit snapshots', () => {
  it('replaces secrets at any depth, whatever their type, and keeps the rest', () => {
    const body = {
      email: 'a@example.com',
      password: 'hunter22',
      profile: { new_password: 'x', phone: '+33 1' },
      tokens: [{ access_token: 'eyJ', refresh_token: 'r', token_type: 'Bearer' }],
      device: { id: 'd1', secret: { value: 's' }, mqtt_credentials: { username: 'u', password: 'p' } },
      card: { card_number: '4242424242424242', cvc: '123', brand: 'visa' },
      client_secret: 'pi_1_secret_2',
      amount: 1500,
    }
    const out = redact(body) as typeof body
    expect(out).toEqual({
      email: 'a@example.com',
      password: REDACTED,
      profile: { new_password: REDACTED, phone: '+33 1' },
      tokens: REDACTED,
      device: { id: 'd1', secret: REDACTED, mqtt_credentials: REDACTED },
      card: { card_number: REDACTED, cvc: REDACTED, brand: 'visa' },
      client_secret: REDACTED,
      amount: 1500,
    })
    for (const secret of ['hunter22', 'eyJ', '4242424242424242', 'pi_1_secret_2', '"s"', '"p"']) {
      expect(JSON.stringify(out)).not.toContain(secret)
    }
  })

  it('keeps a small value whole and cuts a large one to the bound, on a character boundary', () => {
    expect(snapshot(undefined)).toEqual({ text: null, truncated: false })
    expect(snapshot({ a: 1 })).toEqual({ text: '{"a":1}', truncated: false })
    expect(fromSnapshot('{"a":1}', false)).toEqual({ a: 1 })

    const large = { names: Array.from({ length: 100 }, (_, i) => `é-${i}-€`) }
    const cut = snapshot(large, 64)
    expect(cut.truncated).toBe(true)
    expect(Buffer.byteLength(cut.text ?? '')).toBeLessThanOrEqual(64)
    expect(Buffer.byteLength(cut.text ?? '')).toBeGreaterThan(58)
    expect(JSON.stringify(large).startsWith(cut.text ?? 'x')).toBe(true)
    expect(cut.text).not.toContain('\uFFFD')
    // A cut snapshot is shown as its text, not parsed.
    expect(fromSnapshot(cut.text, true)).toBe(cut.text)
  })

  it('tells outcomes by status', () => {
    expect([200, 201, 204, 400, 403, 409, 422, 500, 503].map(outcomeOf)).toEqual([
      'succeeded',
      'succeeded',
      'succeeded',
      'refused',
      'refused',
      'refused',
      'refused',
      'failed',
      'failed',
    ])
  })

  it('bounds ids by time: an id made at t is not below the bound of t, and below that of t + 1 ms', () => {
    for (const t of [0, 1, 1_700_000_000_000, Date.now(), 2 ** 48 - 2]) {
      const id = uuidv7(t)
      expect(id >= timeBound(t), `${id} vs ${timeBound(t)}`).toBe(true)
      expect(id < timeBound(t + 1), `${id} vs ${timeBound(t + 1)}`).toBe(true)
    }
  })
})
