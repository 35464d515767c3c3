import { describe, expect, test } from 'vitest'
import { verifyWebhook } from '../../src/client/webhooks.ts'
import { newSigningSecret, signatureHeader } from '../../src/modules/webhooks/webhooks.signing.ts'

// The platform's signer and the receivers' verifier (src/client/webhooks.ts) are written apart;
// they must agree through the documented recipe, and the verifier must refuse anything altered.

const now = new Date('2026-12-07T10:00:00Z')
const timestamp = Math.floor(now.getTime() / 1000)
const body = JSON.stringify({
  id: 'evt_1',
  type: 'session.closed',
  created_at: now.toISOString(),
  lot_id: null,
  data: {},
})

const headersOf = (secrets: string[], at = timestamp, raw = body) => ({
  'webhook-id': 'evt_1',
  'webhook-timestamp': String(at),
  'webhook-signature': signatureHeader(secrets, at, raw),
})

describe('webhook signatures: signer and verifier', () => {
  const secret = newSigningSecret()

  test('a signed delivery verifies, as a string or as the raw bytes', () => {
    expect(verifyWebhook(secret, headersOf([secret]), body, { now })).toBe(true)
    expect(verifyWebhook(secret, headersOf([secret]), Buffer.from(body), { now })).toBe(true)
  })

  test('a changed body, timestamp or signature, or another secret, does not', () => {
    const headers = headersOf([secret])
    expect(verifyWebhook(secret, headers, body.replace('session.closed', 'session.started'), { now })).toBe(
      false,
    )
    expect(
      verifyWebhook(secret, { ...headers, 'webhook-timestamp': String(timestamp + 1) }, body, { now }),
    ).toBe(false)
    const flipped = headers['webhook-signature'].replace(/.$/, (c) => (c === '0' ? '1' : '0'))
    expect(verifyWebhook(secret, { ...headers, 'webhook-signature': flipped }, body, { now })).toBe(false)
    expect(verifyWebhook(newSigningSecret(), headers, body, { now })).toBe(false)
    expect(verifyWebhook(secret, { ...headers, 'webhook-signature': 'v2=00' }, body, { now })).toBe(false)
    expect(verifyWebhook(secret, {}, body, { now })).toBe(false)
  })

  test('an old or future timestamp is refused, even correctly signed (a captured request replayed)', () => {
    expect(verifyWebhook(secret, headersOf([secret], timestamp - 301), body, { now })).toBe(false)
    expect(verifyWebhook(secret, headersOf([secret], timestamp + 301), body, { now })).toBe(false)
    expect(verifyWebhook(secret, headersOf([secret], timestamp - 299), body, { now })).toBe(true)
    expect(
      verifyWebhook(secret, headersOf([secret], timestamp - 600), body, { now, toleranceSeconds: 900 }),
    ).toBe(true)
  })

  test('during a rotation either secret verifies the twice-signed delivery', () => {
    const next = newSigningSecret()
    const headers = headersOf([next, secret])
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2)
    expect(verifyWebhook(secret, headers, body, { now })).toBe(true)
    expect(verifyWebhook(next, headers, body, { now })).toBe(true)
  })
})
