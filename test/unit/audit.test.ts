import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import type { AuditRepository } from '../../src/modules/audit/audit.repository.ts'
import {
  type AuditEntry,
  createAuditService,
  outcomeOf,
  timeBound,
} from '../../src/modules/audit/audit.service.ts'
import { fromSnapshot, REDACTED, redact, snapshot } from '../../src/modules/audit/audit.snapshot.ts'
import { uuidv7 } from '../../src/shared/ids.ts'
import { createLogger } from '../../src/shared/logger.ts'

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

describe('the audit service', () => {
  const entry: AuditEntry = {
    at: new Date('2026-03-01T10:00:00Z'),
    actor: { userId: 'u1', role: 'admin' },
    action: 'createUser',
    method: 'POST',
    path: '/api/v1/users',
    route: '/api/v1/users',
    target: { type: 'users', id: 'u2' },
    status: 201,
    errorCode: null,
    requestId: 'r1',
    ip: '203.0.113.9',
    userAgent: null,
    requestBody: { email: 'a@example.com', password: 'hunter22' },
    before: undefined,
    after: { id: 'u2', email: 'a@example.com' },
  }

  function serviceWith(
    repo: Partial<AuditRepository>,
    actorEmail = async (_id: string) => 'admin@example.com',
  ) {
    const registry = new Registry()
    const logLines: string[] = []
    const service = createAuditService({
      repo: { find: async () => undefined, ...repo } as AuditRepository,
      actorEmail,
      logger: createLogger('error', {}, { write: (line: string) => void logLines.push(line) }),
      registry,
      settings: { retentionDays: 365 },
    })
    const failures = async () =>
      (await registry.getSingleMetric('audit_log_write_failures_total')?.get())?.values[0]?.value ?? 0
    return { service, failures, logLines }
  }

  it('writes the record it was given, redacted, with an id of its time', async () => {
    const written: unknown[] = []
    const { service } = serviceWith({ insert: async (record) => void written.push(record) })
    const id = await service.record(entry)
    expect(id).toBeDefined()
    expect(id && id >= timeBound(entry.at.getTime()) && id < timeBound(entry.at.getTime() + 1)).toBe(true)
    expect(written).toEqual([
      expect.objectContaining({
        _id: id,
        actor_id: 'u1',
        actor_email: 'admin@example.com',
        outcome: 'succeeded',
        target_type: 'users',
        target_id: 'u2',
        request_body: '{"email":"a@example.com","password":"[redacted]"}',
        before: null,
        after: '{"id":"u2","email":"a@example.com"}',
        truncated: [],
      }),
    ])
  })

  it('never throws when the write fails: it logs and counts the failure', async () => {
    const { service, failures, logLines } = serviceWith({
      insert: async () => {
        throw new Error('database unavailable')
      },
    })
    await expect(service.record(entry)).resolves.toBeUndefined()
    await expect(service.record(entry)).resolves.toBeUndefined()
    expect(await failures()).toBe(2)
    expect(logLines).toHaveLength(2)
    expect(logLines[0]).toContain('audit record not written')
    expect(logLines[0]).toContain('createUser')
    expect(logLines[0]).toContain('r1')
    expect(logLines.join('')).not.toContain('hunter22')
  })

  it('writes the records of concurrent requests together while a write is in flight', async () => {
    const writes: string[][] = []
    let release: () => void = () => {}
    const first = new Promise<void>((resolve) => {
      release = resolve
    })
    const { service, failures } = serviceWith({
      insert: async (record) => {
        writes.push([record.request_id])
        await first
      },
      insertMany: async (records) => void writes.push(records.map((r) => r.request_id)),
    })
    const pending = ['r1', 'r2', 'r3', 'r4'].map((requestId) => service.record({ ...entry, requestId }))
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(writes).toEqual([['r1']])
    release()
    const ids = await Promise.all(pending)
    expect(writes).toEqual([['r1'], ['r2', 'r3', 'r4']])
    expect(ids.every((id) => typeof id === 'string')).toBe(true)
    expect(await failures()).toBe(0)
  })

  it('tells each request of a failed batch its own fate', async () => {
    let release: () => void = () => {}
    const first = new Promise<void>((resolve) => {
      release = resolve
    })
    const stored = new Set<string>()
    const { service, failures } = serviceWith({
      insert: async (record) => {
        if (record.request_id === 'r1') await first
        if (record.request_id === 'r3') throw new Error('this one cannot be written')
        stored.add(record.request_id)
      },
      insertMany: async () => {
        throw new Error('the batch failed')
      },
    })
    const pending = ['r1', 'r2', 'r3', 'r4'].map((requestId) => service.record({ ...entry, requestId }))
    await new Promise((resolve) => setTimeout(resolve, 10))
    release()
    const ids = await Promise.all(pending)
    expect(ids.map((id) => id !== undefined)).toEqual([true, true, false, true])
    expect([...stored].sort()).toEqual(['r1', 'r2', 'r4'])
    expect(await failures()).toBe(1)
  })

  it("reads an actor's e-mail once a minute, not once per action", async () => {
    let reads = 0
    const { service } = serviceWith({ insert: async () => {} }, async () => {
      reads += 1
      return 'admin@example.com'
    })
    for (let i = 0; i < 5; i++) await service.record(entry)
    await service.record({ ...entry, actor: { userId: 'u9', role: 'operator' } })
    expect(reads).toBe(2)
  })
})
