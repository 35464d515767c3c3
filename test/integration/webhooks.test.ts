import { createHmac, randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { components, ParkingClient } from '../../src/client/index.ts'
import { eventId, type PlatformEvent } from '../../src/modules/webhooks/webhooks.contract.ts'
import { backoffMs, retryAfterMs } from '../../src/modules/webhooks/webhooks.dispatcher.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { clientFor, expectData, expectProblem } from '../harness/client.ts'
import { createLot, enterVehicle, type TestLot, uniquePlate } from '../harness/facility.ts'
import { expectJson, requester } from '../harness/http.ts'
import { isolatedDatabase, startTestPlatform, type TestPlatform } from '../harness/platform.ts'
import {
  failTimes,
  holdUntilReleased,
  ok,
  type ReceivedWebhook,
  reply,
  signedBy,
  startWebhookReceiver,
  type WebhookReceiver,
} from '../harness/webhook-receiver.ts'

// Outbound webhooks against the real platform and a real receiver (test/harness/webhook-receiver.ts,
// node:http on 127.0.0.1): signatures are checked with the receivers' verifier (src/client/webhooks.ts),
// never with the server's signer, and the first delivery's also with the README's recipe computed
// here (node:crypto). Subscriptions to hosts that do not answer here are made disabled. Events are
// published through services.webhooks (the producers' port) so that each case controls its events; the producers' own tests cover what the capabilities publish.
// Retry timings are small (config overrides); nothing asserts on durations. Calls to the platform's
// API go through the typed client (src/client); only bodies its types forbid are sent raw.

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>) {
  const deadline = Date.now() + 20_000
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

let platform: TestPlatform
let receiver: WebhookReceiver
let admin: Account
let operator: Account
let customer: Account
let lot: TestLot
/** The typed client as the admin. */
let api: ParkingClient

const send = requester(() => platform)
const base = '/api/v1/webhooks'
const missingId = '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a'

type SubscriptionCreate = components['schemas']['WebhookSubscriptionCreate']
type DeliveryStatus = components['schemas']['WebhookDelivery']['status']

function event(type: PlatformEvent['type'] = 'session.started', lotId: string | null = null): PlatformEvent {
  const fact = randomBytes(8).toString('hex')
  return { id: eventId(type, fact), type, occurred_at: new Date(), lot_id: lotId, data: { fact } }
}

/** The `v1=` signature of a delivery by the README's recipe, computed here with node:crypto. */
const ownSignature = (secret: string, got: ReceivedWebhook) =>
  `v1=${createHmac('sha256', secret).update(`${got.timestamp}.`).update(got.raw).digest('hex')}`

async function subscribe(url: string, body: Partial<SubscriptionCreate> = {}) {
  return await expectData(
    api.POST('/api/v1/webhooks/subscriptions', { body: { url, event_types: ['session.started'], ...body } }),
    201,
  )
}

const deliveriesOf = async (subscriptionId: string, query: { status?: DeliveryStatus } = {}) =>
  (
    await expectData(
      api.GET('/api/v1/webhooks/subscriptions/{id}/deliveries', {
        params: { path: { id: subscriptionId }, query: { limit: 100, ...query } },
      }),
    )
  ).data

const subscriptionView = (id: string) =>
  expectData(api.GET('/api/v1/webhooks/subscriptions/{id}', { params: { path: { id } } }))

const deliveryView = (id: string) =>
  expectData(api.GET('/api/v1/webhooks/deliveries/{id}', { params: { path: { id } } }))

const eventTypes = async () => (await expectData(api.GET('/api/v1/webhooks/event-types'))).data

const rotateSecret = (id: string) =>
  expectData(api.POST('/api/v1/webhooks/subscriptions/{id}/rotate-secret', { params: { path: { id } } }))

const replayDelivery = (id: string) =>
  api.POST('/api/v1/webhooks/deliveries/{id}/replay', { params: { path: { id } } })

beforeAll(async () => {
  receiver = await startWebhookReceiver()
  platform = await startTestPlatform({
    ...testAdmin,
    JOBS_ENABLED: 'false',
    WEBHOOK_RETRY_BASE_MS: '20',
    WEBHOOK_RETRY_MAX_MS: '200',
    WEBHOOK_POLL_MS: '20',
    WEBHOOK_MAX_ATTEMPTS: '4',
    WEBHOOK_DISABLE_AFTER_FAILURES: '6',
    WEBHOOK_DISABLE_AFTER_SECONDS: '0',
    // Long: the slow receiver holds its answer until the test releases it.
    WEBHOOK_TIMEOUT_MS: '60000',
  })
  admin = await signInAdmin(platform)
  api = clientFor(platform, admin)
  operator = await createAccount(platform, admin, 'operator')
  customer = await createAccount(platform, admin, 'customer')
  lot = await createLot(platform, admin, { spaces: { STANDARD: 2 } })
})

afterAll(async () => {
  await platform?.stop()
  await receiver?.close()
})

describe('subscriptions', () => {
  it('are for admins only', async () => {
    const body: SubscriptionCreate = { url: 'https://example.com/hook', event_types: ['session.started'] }
    for (const who of [operator, customer]) {
      const as = clientFor(platform, who)
      await expectProblem(as.POST('/api/v1/webhooks/subscriptions', { body }), 403)
      await expectProblem(as.GET('/api/v1/webhooks/subscriptions'), 403)
      await expectProblem(as.GET('/api/v1/webhooks/event-types'), 403)
    }
    await expectProblem(clientFor(platform).GET('/api/v1/webhooks/subscriptions'), 401)
  })

  it('list the event types with a description each', async () => {
    const data = await eventTypes()
    expect(data.map((t) => t.type)).toContain('lot.availability_threshold_crossed')
    for (const t of data) expect(t.description.length).toBeGreaterThan(10)
  })

  it('refuse invalid bodies with problem+json naming the field', async () => {
    // Sent raw: most of these bodies are ones the typed client would not let through.
    const cases: [Record<string, unknown>, string, number][] = [
      [{ url: 'ftp://example.com/x', event_types: ['session.started'] }, 'url', 400],
      [{ url: 'not a url', event_types: ['session.started'] }, 'url', 400],
      [{ url: 'https://u:p@example.com/x', event_types: ['session.started'] }, 'url', 400],
      [{ url: 'https://example.com/x', event_types: [] }, 'event_types', 400],
      [{ url: 'https://example.com/x', event_types: ['session.exploded'] }, 'event_types.0', 400],
      [{ url: 'https://example.com/x', event_types: ['session.started'], secret: 'mine' }, '', 400],
      [
        {
          url: 'https://example.com/x',
          event_types: ['lot.availability_threshold_crossed'],
          lot_id: lot.lotId,
        },
        'threshold_free_spaces',
        400,
      ],
      [
        {
          url: 'https://example.com/x',
          event_types: ['lot.availability_threshold_crossed'],
          threshold_free_spaces: 3,
        },
        'lot_id',
        400,
      ],
      [
        { url: 'https://example.com/x', event_types: ['session.started'], threshold_free_spaces: 3 },
        'threshold_free_spaces',
        400,
      ],
      [
        { url: 'https://example.com/x', event_types: ['session.started'], threshold_free_spaces: -1 },
        'threshold_free_spaces',
        400,
      ],
    ]
    for (const [body, field, status] of cases) {
      const res = await send('POST', `${base}/subscriptions`, admin, body)
      const problem = await expectJson(res, status)
      expect(res.headers.get('content-type')).toContain('application/problem+json')
      expect(problem.code).toBe('VALIDATION_FAILED')
      expect(
        problem.errors.map((e: { field: string }) => e.field),
        JSON.stringify(body),
      ).toContain(field)
    }
    const unknownLot = api.POST('/api/v1/webhooks/subscriptions', {
      body: { url: 'https://example.com/x', event_types: ['session.started'], lot_id: missingId },
    })
    expect((await expectProblem(unknownLot, 404)).code).toBe('NOT_FOUND')
    // PATCH applies the same rules to the result.
    const sub = await subscribe('https://example.com/patched', { enabled: false })
    const patched = api.PATCH('/api/v1/webhooks/subscriptions/{id}', {
      params: { path: { id: sub.id } },
      body: { event_types: ['lot.availability_threshold_crossed'] },
    })
    expect((await expectProblem(patched, 400)).errors?.[0]?.field).toBe('threshold_free_spaces')
  })

  it('show the secret only on create and on rotation', async () => {
    const created = await subscribe('https://example.com/secret', { description: 'Signage', enabled: false })
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/)
    const one = await subscriptionView(created.id)
    expect(one).toMatchObject({
      id: created.id,
      description: 'Signage',
      enabled: false,
      consecutive_failures: 0,
    })
    expect(JSON.stringify(one)).not.toContain('whsec_')
    const list = await expectData(
      api.GET('/api/v1/webhooks/subscriptions', { params: { query: { limit: 100 } } }),
    )
    expect(list.data.map((s) => s.id)).toContain(created.id)
    expect(JSON.stringify(list)).not.toContain('whsec_')
    const rotated = await rotateSecret(created.id)
    expect(rotated.secret).toMatch(/^whsec_/)
    expect(rotated.secret).not.toBe(created.secret)
    expect(rotated.previous_secret_expires_at).not.toBeNull()
    expect(JSON.stringify(await subscriptionView(created.id))).not.toContain('whsec_')
  })

  it('are deleted', async () => {
    const sub = await subscribe('https://example.com/deleted', { enabled: false })
    const remove = () =>
      api.DELETE('/api/v1/webhooks/subscriptions/{id}', { params: { path: { id: sub.id } } })
    expect((await remove()).response.status).toBe(204)
    await expectProblem(
      api.GET('/api/v1/webhooks/subscriptions/{id}', { params: { path: { id: sub.id } } }),
      404,
    )
    await expectProblem(remove(), 404)
  })
})

describe('delivery', () => {
  it('POSTs the event with headers and a signature the documented recipe verifies', async () => {
    const endpoint = receiver.endpoint()
    const sub = await subscribe(endpoint.url)
    const published = event()
    await platform.services.webhooks.publish([published])
    const [got] = await until('the delivery', () => endpoint.received().length > 0 && endpoint.received())
    if (!got) throw new Error('no delivery')
    expect(got.id).toBe(published.id)
    // The README's recipe computed here with node:crypto, apart from the receivers' verifier: one
    // v1= signature of "<timestamp>.<raw body>", and a timestamp of now.
    expect(got.signature.split(' ')).toEqual([ownSignature(sub.secret, got)])
    expect(Math.abs(Date.now() / 1000 - Number(got.timestamp))).toBeLessThanOrEqual(300)
    expect(signedBy(sub.secret, got)).toBe(true)
    expect(got.event).toEqual({
      id: published.id,
      type: 'session.started',
      created_at: published.occurred_at.toISOString(),
      lot_id: null,
      data: published.data,
    })
    // Tampering with the body, the timestamp or the signature fails the recipe.
    const headers = got.headers
    expect(signedBy(sub.secret, { headers, raw: Buffer.from(got.text.replace('"fact"', '"fakt"')) })).toBe(
      false,
    )
    const later = String(Number(got.timestamp) + 1)
    expect(signedBy(sub.secret, { headers: { ...headers, 'webhook-timestamp': later }, raw: got.raw })).toBe(
      false,
    )
    const flipped = got.signature.replace(/.$/, (c) => (c === '0' ? '1' : '0'))
    expect(
      signedBy(sub.secret, { headers: { ...headers, 'webhook-signature': flipped }, raw: got.raw }),
    ).toBe(false)
    expect(signedBy(`${sub.secret}x`, got)).toBe(false)
    // An old timestamp is refused even with a valid signature (replay protection).
    expect(signedBy(sub.secret, got, { now: new Date((Number(got.timestamp) + 301) * 1000) })).toBe(false)

    const [delivery] = await deliveriesOf(sub.id)
    await until(
      'the delivery to succeed',
      async () => (await deliveriesOf(sub.id))[0]?.status === 'succeeded',
    )
    const detail = await deliveryView(delivery?.id ?? '')
    expect(detail).toMatchObject({
      event_id: published.id,
      status: 'succeeded',
      attempts: 1,
      last_status_code: 200,
    })
    expect(detail.event).toEqual(got.event)
    expect(detail.attempt_log).toMatchObject([
      { n: 1, succeeded: true, status_code: 200, response_body: 'thanks' },
    ])
  })

  it('retries until the receiver accepts, and the receiver accepts each event once', async () => {
    const endpoint = receiver.endpoint(failTimes(3, reply(500, 'down for maintenance'), reply(204)))
    const sub = await subscribe(endpoint.url)
    const published = event()
    await platform.services.webhooks.publish([published])
    await until('the accepted delivery', () => endpoint.received().some((r) => r.status === 204))
    const [delivery] = await until('the delivery to succeed', async () => {
      const list = await deliveriesOf(sub.id)
      return list[0]?.status === 'succeeded' && list
    })
    const accepted = endpoint.received().filter((r) => r.status >= 200 && r.status < 300)
    expect(accepted.map((r) => r.id)).toEqual([published.id])
    expect(endpoint.received().map((r) => r.id)).toEqual(Array(4).fill(published.id))
    const detail = await deliveryView(delivery?.id ?? '')
    expect(detail.attempts).toBe(4)
    expect(detail.attempt_log.map((a) => [a.n, a.status_code, a.succeeded])).toEqual([
      [1, 500, false],
      [2, 500, false],
      [3, 500, false],
      [4, 204, true],
    ])
    expect(detail.attempt_log[0]?.response_body).toBe('down for maintenance')
    // Each attempt was signed afresh with its own timestamp, all valid.
    for (const got of endpoint.received()) expect(signedBy(sub.secret, got)).toBe(true)
    expect((await subscriptionView(sub.id)).consecutive_failures).toBe(0)
    const metrics = await (await platform.request('/metrics')).text()
    const value = (line: string) =>
      Number(
        metrics
          .split('\n')
          .find((l) => l.startsWith(line))
          ?.split(' ')[1],
      )
    expect(value('webhook_attempts_total{outcome="failed"}')).toBeGreaterThanOrEqual(3)
    expect(value('webhook_deliveries_total{outcome="succeeded"}')).toBeGreaterThanOrEqual(1)
    expect(value('webhook_attempt_duration_seconds_count{outcome="succeeded"}')).toBeGreaterThanOrEqual(1)
    expect(metrics).toMatch(/^webhook_queue_depth \d+$/m)
  })

  it('fails a delivery after the last attempt', async () => {
    const endpoint = receiver.endpoint(reply(502))
    const sub = await subscribe(endpoint.url)
    await platform.services.webhooks.publish([event()])
    const [delivery] = await until('the delivery to fail', async () => {
      const list = await deliveriesOf(sub.id)
      return list[0]?.status === 'failed' && list
    })
    expect(delivery).toMatchObject({ attempts: 4 })
    expect(endpoint.received()).toHaveLength(4)
    // Four failures are not enough to disable it (six are).
    expect((await subscriptionView(sub.id)).enabled).toBe(true)
  })

  it('records an event published twice (even at once) as one delivery', async () => {
    const endpoint = receiver.endpoint()
    const sub = await subscribe(endpoint.url)
    const published = event()
    const again = { ...published, occurred_at: new Date(published.occurred_at.getTime() + 5000) }
    await Promise.all([
      platform.services.webhooks.publish([published]),
      platform.services.webhooks.publish([published, published]),
    ])
    await platform.services.webhooks.publish([again])
    await until('the delivery', () => endpoint.received().length > 0)
    await until(
      'the delivery to succeed',
      async () => (await deliveriesOf(sub.id))[0]?.status === 'succeeded',
    )
    // A later event of the same subscription proves the queue moved on past any duplicate.
    const later = event()
    await platform.services.webhooks.publish([later])
    await until('the later delivery', () => endpoint.received().some((r) => r.id === later.id))
    expect(endpoint.received().filter((r) => r.id === published.id)).toHaveLength(1)
    const list = await deliveriesOf(sub.id)
    expect(list.filter((d) => d.event_id === published.id)).toHaveLength(1)
    // The body carries the first telling of the event.
    const body = endpoint.received().find((r) => r.id === published.id)?.event
    expect(body?.created_at).toBe(published.occurred_at.toISOString())
  })

  it('sends only the types and the lot a subscription asks for', async () => {
    const endpoint = receiver.endpoint()
    await subscribe(endpoint.url, { event_types: ['session.closed'], lot_id: lot.lotId })
    const otherLot = event('session.closed', '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a')
    const otherType = event('session.started', lot.lotId)
    const wanted = event('session.closed', lot.lotId)
    await platform.services.webhooks.publish([otherLot, otherType, wanted])
    await until('the wanted delivery', () => endpoint.received().length > 0)
    // The three were recorded together: nothing else is coming for this endpoint.
    await new Promise((r) => setTimeout(r, 200))
    expect(endpoint.received().map((r) => r.id)).toEqual([wanted.id])
    expect(platform.services.webhooks.wants('session.closed')).toBe(true)
  })

  it('a slow receiver holds delivery slots, not the API nor other deliveries', async () => {
    // The trigger is the real producer: a vehicle's entry through the API becomes session.started.
    const gate = await createLot(platform, admin, { spaces: { STANDARD: 4 } })
    const hold = holdUntilReleased(reply(200))
    const slow = receiver.endpoint(hold.answer)
    const fast = receiver.endpoint()
    const slowSub = await subscribe(slow.url, { lot_id: gate.lotId })
    const first = await enterVehicle(platform, operator, { license_plate: uniquePlate(), lot_id: gate.lotId })
    const held = await until("the slow receiver to hold the first entry's event", () =>
      slow.received().find((r) => r.event.data.session_id === first.session.id),
    )
    // While it hangs: another entry through the API is answered, and its event goes out too.
    const second = await enterVehicle(platform, operator, {
      license_plate: uniquePlate(),
      lot_id: gate.lotId,
    })
    await until("the second entry's event", () =>
      slow.received().some((r) => r.event.data.session_id === second.session.id),
    )
    await expectData(api.GET('/api/v1/webhooks/subscriptions', { params: { query: { limit: 5 } } }))
    await expectData(api.GET('/api/v1/lots/{id}', { params: { path: { id: gate.lotId } } }))
    // A subscription made meanwhile gets its event delivered and recorded.
    const fastSub = await subscribe(fast.url, { event_types: ['session.closed'] })
    const quick = event('session.closed')
    await platform.services.webhooks.publish([quick])
    await until('the fast delivery to be recorded', async () => {
      const list = await deliveriesOf(fastSub.id)
      return list[0]?.status === 'succeeded' && list
    })
    expect(fast.received().map((r) => r.id)).toEqual([quick.id])
    // The slow ones were open all along: no answer sent, both deliveries pending.
    expect(held.status).toBe(0)
    expect(slow.received().every((r) => r.status === 0)).toBe(true)
    expect((await deliveriesOf(slowSub.id)).map((d) => d.status)).toEqual(['pending', 'pending'])
    expect(platform.services.webhooks.inFlight()).toBeGreaterThanOrEqual(2)
    hold.release()
    await until('the slow deliveries to succeed', async () =>
      (await deliveriesOf(slowSub.id)).every((d) => d.status === 'succeeded'),
    )
    const ids = slow.received().map((r) => r.id)
    expect(ids).toHaveLength(2)
    expect(new Set(ids).size).toBe(2)
    for (const got of slow.received()) expect(signedBy(slowSub.secret, got)).toBe(true)
  })
})

describe('test events', () => {
  it('sends a signed webhook.test to one subscription on request, through the log', async () => {
    const endpoint = receiver.endpoint()
    const sub = await subscribe(endpoint.url)
    const delivery = await expectData(
      api.POST('/api/v1/webhooks/subscriptions/{id}/test', { params: { path: { id: sub.id } } }),
      202,
    )
    expect(delivery).toMatchObject({ event_type: 'webhook.test', subscription_id: sub.id, status: 'pending' })
    const [got] = await until('the test event', () => endpoint.received().length > 0 && endpoint.received())
    expect(got?.id).toBe(delivery.event_id)
    expect(got?.event).toMatchObject({
      type: 'webhook.test',
      data: { subscription_id: sub.id },
    })
    expect(got && signedBy(sub.secret, got)).toBe(true)
    await until('the test delivery to succeed', async () => {
      const view = await deliveryView(delivery.id)
      return view.status === 'succeeded'
    })
    // Not a type anyone subscribes to.
    const data = await eventTypes()
    expect(data.map((t) => t.type)).not.toContain('webhook.test')
    // Sent raw: the client's types do not let webhook.test into event_types.
    await expectJson(
      send('POST', `${base}/subscriptions`, admin, { url: endpoint.url, event_types: ['webhook.test'] }),
      400,
    )
    await expectProblem(
      api.POST('/api/v1/webhooks/subscriptions/{id}/test', { params: { path: { id: missingId } } }),
      404,
    )
  })
})

describe('replay', () => {
  it('sends the same event again as a new delivery, listed first', async () => {
    const endpoint = receiver.endpoint()
    const sub = await subscribe(endpoint.url)
    const published = event()
    await platform.services.webhooks.publish([published])
    const [first] = await until('the delivery to succeed', async () => {
      const list = await deliveriesOf(sub.id)
      return list[0]?.status === 'succeeded' && list
    })
    const replay = await expectData(replayDelivery(first?.id ?? ''), 202)
    expect(replay).toMatchObject({
      event_id: published.id,
      replay_of: first?.id,
      status: 'pending',
      attempts: 0,
    })
    expect(replay.id).not.toBe(first?.id)
    await until('the replayed delivery', () => endpoint.received().length === 2)
    const [original, again] = endpoint.received()
    expect(again?.id).toBe(published.id)
    expect(again?.text).toBe(original?.text)
    expect(again && signedBy(sub.secret, again)).toBe(true)
    const list = await until('the replay to succeed', async () => {
      const l = await deliveriesOf(sub.id)
      return l[0]?.status === 'succeeded' && l
    })
    expect(list.map((d) => d.id)).toEqual([replay.id, first?.id])
    expect(await deliveriesOf(sub.id, { status: 'pending' })).toEqual([])
    await expectProblem(replayDelivery('whd_00000000000000000000000000000000'), 404)
  })

  it('signs with the old and the new secret during a rotation', async () => {
    const endpoint = receiver.endpoint()
    const sub = await subscribe(endpoint.url)
    const rotated = await rotateSecret(sub.id)
    await platform.services.webhooks.publish([event()])
    const [got] = await until('the delivery', () => endpoint.received().length > 0 && endpoint.received())
    if (!got) throw new Error('no delivery')
    expect(got.signature.split(' ')).toHaveLength(2)
    expect(got.signature.split(' ').sort()).toEqual(
      [ownSignature(rotated.secret, got), ownSignature(sub.secret, got)].sort(),
    )
    expect(signedBy(rotated.secret, got)).toBe(true)
    expect(signedBy(sub.secret, got)).toBe(true)
  })
})

describe('Idempotency-Key', () => {
  const key = () => `key-${randomBytes(6).toString('hex')}`
  const keyed = (k: string) => ({ header: { 'idempotency-key': k } })

  it('makes a retried subscribe answer the same subscription and secret, once', async () => {
    const endpoint = receiver.endpoint()
    const k = key()
    const body = { url: endpoint.url, event_types: ['session.closed' as const], description: 'retried' }
    const call = () => api.POST('/api/v1/webhooks/subscriptions', { params: keyed(k), body })
    const first = await expectData(call(), 201)
    const again = await expectData(call(), 201)
    expect(again.id).toBe(first.id)
    expect(again.secret).toBe(first.secret)
    const all = await expectData(
      api.GET('/api/v1/webhooks/subscriptions', { params: { query: { limit: 100 } } }),
    )
    expect(all.data.filter((s) => s.url === endpoint.url)).toHaveLength(1)
    // The same key with another body is refused and makes nothing.
    const reused = await expectProblem(
      api.POST('/api/v1/webhooks/subscriptions', {
        params: keyed(k),
        body: { ...body, description: 'another' },
      }),
      422,
    )
    expect(reused).toMatchObject({ code: 'UNPROCESSABLE', reason: 'idempotency_key_reused' })
    // A refused create frees its key for the corrected request.
    const k2 = key()
    await expectProblem(
      api.POST('/api/v1/webhooks/subscriptions', {
        params: keyed(k2),
        body: { ...body, lot_id: missingId },
      }),
      404,
    )
    const corrected = await expectData(
      api.POST('/api/v1/webhooks/subscriptions', { params: keyed(k2), body: { ...body, lot_id: lot.lotId } }),
      201,
    )
    expect(corrected.lot_id).toBe(lot.lotId)
  })

  it('makes a retried replay or test event queue one delivery; without a key each is another', async () => {
    const endpoint = receiver.endpoint()
    const sub = await subscribe(endpoint.url)
    const published = event()
    await platform.services.webhooks.publish([published])
    const [original] = await until('the delivery to succeed', async () => {
      const list = await deliveriesOf(sub.id)
      return list[0]?.status === 'succeeded' && list
    })
    const replayOnce = (k?: string) =>
      api.POST('/api/v1/webhooks/deliveries/{id}/replay', {
        params: { path: { id: original?.id ?? '' }, ...(k ? keyed(k) : {}) },
      })
    const k = key()
    const first = await expectData(replayOnce(k), 202)
    const again = await expectData(replayOnce(k), 202)
    expect(again.id).toBe(first.id)
    expect(first.replay_of).toBe(original?.id)
    const unkeyedA = await expectData(replayOnce(), 202)
    const unkeyedB = await expectData(replayOnce(), 202)
    expect(new Set([first.id, unkeyedA.id, unkeyedB.id]).size).toBe(3)
    // The same key on another delivery is another request.
    const other = await expectProblem(
      api.POST('/api/v1/webhooks/deliveries/{id}/replay', {
        params: { path: { id: unkeyedA.id }, ...keyed(k) },
      }),
      422,
    )
    expect(other.code).toBe('UNPROCESSABLE')

    const testKey = key()
    const sendTest = () =>
      api.POST('/api/v1/webhooks/subscriptions/{id}/test', {
        params: { path: { id: sub.id }, ...keyed(testKey) },
      })
    const test = await expectData(sendTest(), 202)
    expect((await expectData(sendTest(), 202)).id).toBe(test.id)

    // Original, one keyed replay, two unkeyed ones and one test event: five deliveries, five posts.
    await until('every delivery to succeed', async () => {
      const list = await deliveriesOf(sub.id)
      return list.length === 5 && list.every((d) => d.status === 'succeeded') && list
    })
    await until('five posts', () => endpoint.received().length === 5)
    await new Promise((r) => setTimeout(r, 200))
    const ids = endpoint.received().map((r) => r.id)
    expect(ids.filter((id) => id === published.id)).toHaveLength(4)
    expect(ids.filter((id) => id === test.event_id)).toHaveLength(1)
  })
})

describe('auto-disable', () => {
  it('disables a subscription after persistent failure, holds its deliveries, and resumes on enable', async () => {
    const endpoint = receiver.endpoint(reply(500))
    const sub = await subscribe(endpoint.url)
    const events = [event(), event()]
    await platform.services.webhooks.publish(events)
    const disabled = await until('the auto-disable', async () => {
      const view = await subscriptionView(sub.id)
      return !view.enabled && view
    })
    expect(disabled.disabled_reason).toMatch(/failed attempts in a row/)
    expect(disabled.disabled_at).not.toBeNull()
    expect(disabled.consecutive_failures).toBeGreaterThanOrEqual(6)
    expect(platform.services.webhooks.wants('session.started')).toBe(true) // other subscriptions
    // Settled: nothing in flight for it any more.
    await until('attempts to stop', async () => {
      const before = endpoint.received().length
      await new Promise((r) => setTimeout(r, 150))
      return endpoint.received().length === before
    })
    const held = await deliveriesOf(sub.id, { status: 'pending' })
    expect(held.length).toBeGreaterThanOrEqual(1)
    expect(endpoint.received().every((r) => r.status === 500)).toBe(true)
    // A replay of a disabled subscription's delivery is refused.
    const refused = await expectProblem(replayDelivery(held[0]?.id ?? ''), 409)
    expect(refused.code).toBe('CONFLICT')
    // A new event for it is not recorded while it is disabled.
    const meanwhile = event()
    await platform.services.webhooks.publish([meanwhile])

    endpoint.answer(ok)
    const enabled = await expectData(
      api.POST('/api/v1/webhooks/subscriptions/{id}/enable', { params: { path: { id: sub.id } } }),
    )
    expect(enabled).toMatchObject({ enabled: true, disabled_reason: null, consecutive_failures: 0 })
    await until('the held deliveries to succeed', async () => {
      const list = await deliveriesOf(sub.id)
      return held.every((h) => list.find((d) => d.id === h.id)?.status === 'succeeded') && list
    })
    const accepted = endpoint.received().filter((r) => r.status === 200)
    expect(accepted.map((r) => r.id).sort()).toEqual(held.map((h) => h.event_id).sort())
    expect(accepted.map((r) => r.id)).not.toContain(meanwhile.id)
  })

  it('disables at once on 410 Gone', async () => {
    const endpoint = receiver.endpoint(reply(410))
    const sub = await subscribe(endpoint.url)
    await platform.services.webhooks.publish([event()])
    const view = await until('the disable', async () => {
      const v = await subscriptionView(sub.id)
      return !v.enabled && v
    })
    expect(view.disabled_reason).toMatch(/410/)
    expect(endpoint.received()).toHaveLength(1)
    expect((await deliveriesOf(sub.id))[0]).toMatchObject({ status: 'pending', attempts: 1 })
  })
})

describe('availability thresholds', () => {
  it('sends a crossing to the subscription whose threshold was crossed, once per flip', async () => {
    const endpoint = receiver.endpoint()
    const other = receiver.endpoint()
    const sub = await subscribe(endpoint.url, {
      event_types: ['lot.availability_threshold_crossed'],
      lot_id: lot.lotId,
      threshold_free_spaces: 5,
    })
    await subscribe(other.url, {
      event_types: ['lot.availability_threshold_crossed'],
      lot_id: lot.lotId,
      threshold_free_spaces: 1,
    })
    const at = new Date()
    const counts = (change: string, free: number) => [
      { lot_id: lot.lotId, after_change: change, at, total: 20, free },
    ]
    const sink = platform.services.webhooks
    await sink.availability(counts('1000-0', 8)) // first observation: recorded, no event
    await sink.availability(counts('1001-0', 6)) // same side
    await sink.availability(counts('1002-0', 4)) // below 5
    await sink.availability(counts('1002-0', 4)) // the same change again
    await sink.availability(counts('1001-5', 9)) // older than the last one seen: ignored
    await sink.availability(counts('1003-0', 3)) // still below
    await sink.availability(counts('1004-0', 5)) // back to at least 5
    await until('two crossings', () => endpoint.received().length === 2)
    const bodies = endpoint.received().map((r) => r.event)
    expect(bodies.map((b) => b.data)).toEqual([
      { lot_id: lot.lotId, threshold: 5, direction: 'below', free: 4, total: 20 },
      { lot_id: lot.lotId, threshold: 5, direction: 'above', free: 5, total: 20 },
    ])
    expect(
      bodies.every((b) => b.type === 'lot.availability_threshold_crossed' && b.lot_id === lot.lotId),
    ).toBe(true)
    expect(bodies[0]?.id).toBe(eventId('lot.availability_threshold_crossed', sub.id, lot.lotId, '1002-0'))
    // Threshold 1 was never crossed (free stayed >= 1).
    expect(other.received()).toEqual([])
  })
})

describe('the schedule', () => {
  it('is rebuilt from MongoDB when Redis lost it, by any instance', async () => {
    // Two instances on one database and one Redis prefix: one records without delivering.
    const shared = {
      ...testAdmin,
      JOBS_ENABLED: 'false',
      REDIS_KEY_PREFIX: `t_${randomBytes(4).toString('hex')}:`,
      WEBHOOK_POLL_MS: '20',
    }
    const mongodb = isolatedDatabase(platform.urls.mongodb)
    const recorder = await startTestPlatform({ ...shared, WEBHOOK_DISPATCH_ENABLED: 'false' }, { mongodb })
    const redis = new Redis(platform.urls.redis, { keyPrefix: shared.REDIS_KEY_PREFIX })
    let deliverer: TestPlatform | undefined
    try {
      const endpoint = receiver.endpoint()
      const sub = await recorder.services.webhooks.create({
        url: endpoint.url,
        event_types: ['session.closed'],
      })
      const published = event('session.closed')
      await recorder.services.webhooks.publish([published])
      expect(await redis.zcard('wh:schedule')).toBe(1)
      // Redis loses its data: the schedule and its marker are gone, the deliveries are not.
      await redis.del('wh:schedule', 'wh:schedule:seeded')
      deliverer = await startTestPlatform(shared, { mongodb })
      const [got] = await until('the delivery', () => endpoint.received().length > 0 && endpoint.received())
      expect(got?.id).toBe(published.id)
      expect(got && signedBy(sub.secret, got)).toBe(true)
      await until('the schedule to empty', async () => (await redis.zcard('wh:schedule')) === 0)
      expect(await redis.exists('wh:schedule:seeded')).toBe(1)
      expect(endpoint.received()).toHaveLength(1)
    } finally {
      await deliverer?.stop()
      await recorder.stop()
      redis.disconnect()
    }
  })
})

describe('egress', () => {
  it('refuses, at delivery, an endpoint on a private address when private hosts are not allowed', async () => {
    // Made where private hosts are allowed, delivered by an instance where they are not (as an
    // endpoint whose name starts resolving to a private address would be).
    const shared = {
      ...testAdmin,
      JOBS_ENABLED: 'false',
      REDIS_KEY_PREFIX: `t_${randomBytes(4).toString('hex')}:`,
      WEBHOOK_POLL_MS: '20',
      WEBHOOK_RETRY_BASE_MS: '10000',
    }
    const mongodb = isolatedDatabase(platform.urls.mongodb)
    const recorder = await startTestPlatform(
      { ...shared, WEBHOOK_DISPATCH_ENABLED: 'false', WEBHOOK_ALLOW_PRIVATE_HOSTS: 'true' },
      { mongodb },
    )
    let deliverer: TestPlatform | undefined
    try {
      const endpoint = receiver.endpoint()
      const mapped = receiver.endpoint()
      const subs = await Promise.all(
        [endpoint.url, mapped.url.replace('127.0.0.1', '[::ffff:7f00:1]')].map((url) =>
          recorder.services.webhooks.create({ url, event_types: ['session.closed'] }),
        ),
      )
      await recorder.services.webhooks.publish([event('session.closed')])
      deliverer = await startTestPlatform({ ...shared, WEBHOOK_ALLOW_PRIVATE_HOSTS: 'false' }, { mongodb })
      const webhooks = deliverer.services.webhooks
      for (const [sub, why] of [
        [subs[0], 'refused: 127.0.0.1 is a loopback address'],
        [subs[1], 'refused: ::ffff:7f00:1 is a loopback address'],
      ] as const) {
        const [logged] = await until('the refused attempt', async () => {
          const { data } = await webhooks.deliveries(sub?.id ?? '', { limit: 10 })
          return data[0]?.attempts === 1 && data
        })
        expect(logged).toMatchObject({ status: 'pending', last_status_code: null, last_error: why })
        const detail = await webhooks.delivery(logged?.id ?? '')
        expect(detail.attempt_log).toEqual([expect.objectContaining({ n: 1, succeeded: false, error: why })])
      }
      expect(endpoint.received()).toHaveLength(0)
      expect(mapped.received()).toHaveLength(0)
      // And at subscription time on that instance.
      const refused = await webhooks
        .create({ url: endpoint.url, event_types: ['session.closed'] })
        .catch((error: unknown) => error)
      expect(refused).toMatchObject({ code: 'VALIDATION_FAILED' })
    } finally {
      await deliverer?.stop()
      await recorder.stop()
    }
  })
})

describe('retry timing rules', () => {
  it('back off exponentially with jitter, capped', () => {
    const low = () => 0
    const high = () => 0.999_999
    expect([1, 2, 3, 4].map((n) => backoffMs(n, 10_000, 3_600_000, () => 0.5))).toEqual([
      10_000, 20_000, 40_000, 80_000,
    ])
    expect(backoffMs(3, 10_000, 3_600_000, low)).toBe(30_000)
    expect(backoffMs(3, 10_000, 3_600_000, high)).toBe(50_000)
    expect(backoffMs(20, 10_000, 3_600_000, high)).toBe(3_600_000)
  })

  it('read Retry-After as seconds or a date', () => {
    const now = Date.parse('2026-03-01T12:00:00Z')
    expect(retryAfterMs('120', now)).toBe(120_000)
    expect(retryAfterMs('Sun, 01 Mar 2026 12:00:30 GMT', now)).toBe(30_000)
    expect(retryAfterMs('soon', now)).toBeUndefined()
    expect(retryAfterMs(null, now)).toBeUndefined()
  })
})
