import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createJobsRepository } from '../../src/modules/jobs/jobs.repository.ts'
import { createMailJobsService } from '../../src/modules/jobs/mail-jobs.service.ts'
import { uuidv7 } from '../../src/shared/ids.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { type Account, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createHourlyRate, createLot, enterVehicle, type TestLot, uniquePlate } from '../harness/facility.ts'
import { json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'
import { startSmtp, type TestSmtp } from '../harness/smtp.ts'

// The scheduled jobs of issue 8 against the real services and a real SMTP server: each run twice
// does what one run does (reminders: one e-mail; monthly report: one; purge), and the admins'
// view of every job.

let platform: TestPlatform
let smtp: TestSmtp
let db: Database
let admin: Account
let operator: Account
let active: Account
let inactive: Account
let lot: TestLot

const send = requester(() => platform)

const allJobs = [
  'data.purge',
  'ev.charging-sweep',
  'exports.run',
  'exports.sweep',
  'memberships.renewals',
  'payments.reconcile',
  'reminders.inactive',
  'reports.monthly',
  'reservations.no-show',
  'reservations.tick',
]

beforeAll(async () => {
  smtp = await startSmtp()
  platform = await startTestPlatform({
    ...testAdmin,
    ACCOUNT_APPROVAL_REQUIRED: 'false',
    JOBS_ENABLED: 'false',
    SMTP_URL: smtp.url,
  })
  db = await connectDatabase(platform.urls.mongodb)
  admin = await signInAdmin(platform)
  operator = await createAccount(platform, admin, 'operator')
  active = await createAccount(platform, admin, 'customer')
  inactive = await createAccount(platform, admin, 'customer')
  lot = await createLot(platform, admin, {
    spaces: { STANDARD: 2 },
    currency: 'EUR',
    timeZone: 'Europe/Berlin',
  })
  await createHourlyRate(platform, admin, lot.lotId, 300)
})

afterAll(async () => {
  await db?.close()
  await platform?.stop()
  await smtp?.stop()
})

describe('reminders.inactive', () => {
  it('e-mails a customer without a session once per period, and not one who parked', async () => {
    const plate = uniquePlate()
    expect(
      (
        await send('POST', '/api/v1/vehicles', active.token, {
          license_plate: plate,
          vehicle_type_id: 'standard',
        })
      ).status,
    ).toBe(201)
    await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
    // Both accounts are older than the period; only one has parked within it.
    const longAgo = new Date(Date.now() - 60 * 86_400_000)
    await db
      .collection('users')
      .updateMany({ _id: { $in: [active.id, inactive.id] } as never }, { $set: { created_at: longAgo } })

    const first = await platform.scheduler.runNow('reminders.inactive')
    const second = await platform.scheduler.runNow('reminders.inactive')
    expect(first).toMatchObject({ sent: 1, failed: 0 })
    expect(second).toMatchObject({ sent: 0, already: 1 })
    const [mail] = await smtp.waitFor((m) => m.to.includes(inactive.email))
    expect(mail?.subject).toBe('We miss you at Smart Parking')
    expect(mail?.text).toContain('30 days')
    expect(smtp.to(inactive.email)).toHaveLength(1)
    expect(smtp.to(active.email)).toHaveLength(0)
    expect(smtp.to(admin.email)).toHaveLength(0)
    expect(smtp.to(operator.email)).toHaveLength(0)
  })

  it('tries again on the next run when the server refused the message', async () => {
    const late = await createAccount(platform, admin, 'customer')
    await db
      .collection('users')
      .updateOne({ _id: late.id as never }, { $set: { created_at: new Date(Date.now() - 60 * 86_400_000) } })
    smtp.refuse = true
    try {
      expect(await platform.services.mailJobs.remindInactive()).toMatchObject({ sent: 0, failed: 1 })
    } finally {
      smtp.refuse = false
    }
    expect(await platform.services.mailJobs.remindInactive()).toMatchObject({ sent: 1, failed: 0 })
    expect(smtp.to(late.email)).toHaveLength(1)
  })
})

describe('reminders.inactive over many customers', () => {
  const old = new Date(Date.now() - 60 * 86_400_000).toISOString()
  const customer = (id: string) => ({ id, email: `${id}@example.com`, full_name: 'C', created_at: old })

  /** The job's service on the platform's database, over a list of customers in pages of two. */
  function remindersOver(ids: string[], sent: string[]) {
    return createMailJobsService({
      repo: createJobsRepository(db),
      mailer: {
        kind: 'outbox',
        outbox: undefined,
        send: async (m) => {
          sent.push(String(m.to))
          return { message_id: randomUUID(), accepted: [String(m.to)] }
        },
        close: () => {},
      },
      accounts: async (_role, cursor) => {
        const start = cursor ? Number(cursor) : 0
        const next = start + 2 < ids.length ? String(start + 2) : null
        return { data: ids.slice(start, start + 2).map(customer), next_cursor: next }
      },
      lots: async () => ({ data: [], next_cursor: null }),
      purgeExports: async () => 0,
      publicUrl: () => 'http://localhost',
      logger: { warn: () => {}, debug: () => {}, info: () => {} } as never,
      settings: {
        inactiveDays: 30,
        idempotencyRetentionHours: 48,
        reservationSlotMinutes: 30,
        maxCustomersPerRun: 2,
      },
    })
  }

  it('goes on from where the last run stopped, and starts over after the last page', async () => {
    const ids = Array.from({ length: 5 }, () => randomUUID())
    const sent: string[] = []
    const jobs = remindersOver(ids, sent)
    expect(await jobs.remindInactive()).toMatchObject({ checked: 2, sent: 2, wrapped: false })
    expect(await jobs.remindInactive()).toMatchObject({ checked: 2, sent: 2, wrapped: false })
    expect(await jobs.remindInactive()).toMatchObject({ checked: 1, sent: 1, wrapped: true })
    expect(sent).toEqual(ids.map((id) => `${id}@example.com`))
    // Over again from the first page: all told this period.
    expect(await jobs.remindInactive()).toMatchObject({ checked: 2, sent: 0, already: 2 })
    expect(await jobs.remindInactive()).toMatchObject({ checked: 2, sent: 0, already: 2 })
    expect(await jobs.remindInactive()).toMatchObject({ checked: 1, sent: 0, wrapped: true })
  })

  it('counts a stay that began before the period and ended in it as parking', async () => {
    const [leftYesterday, leftLongAgo] = [randomUUID(), randomUUID()]
    const stay = (userId: string, exitDaysAgo: number) => ({
      _id: uuidv7(Date.now() - 45 * 86_400_000) as never,
      lot_id: randomUUID(),
      user_id: userId,
      status: 'closed',
      entry_at: new Date(Date.now() - 45 * 86_400_000),
      exit_at: new Date(Date.now() - exitDaysAgo * 86_400_000),
    })
    await db.collection('sessions').insertMany([stay(leftYesterday, 1), stay(leftLongAgo, 40)])
    const sent: string[] = []
    expect(await remindersOver([leftYesterday, leftLongAgo], sent).remindInactive()).toMatchObject({
      checked: 2,
      sent: 1,
      wrapped: true,
    })
    expect(sent).toEqual([`${leftLongAgo}@example.com`])
  })
})

describe('reports.monthly', () => {
  it('sends the previous month once, with per-lot figures, and answers the same HTML to admins', async () => {
    // A stay of this month, paid and closed.
    const plate = uniquePlate()
    const entry = await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
    expect(
      (
        await send('POST', '/api/v1/payments', operator.token, {
          session_id: entry.session.id,
          payment_method: 'card',
          amount: 300,
        })
      ).status,
    ).toBe(201)
    expect(
      (await send('POST', '/api/v1/sessions/exit', operator.token, { ticket_number: entry.ticket_number }))
        .status,
    ).toBe(200)
    const month = new Date().toISOString().slice(0, 7)
    const report = await platform.services.mailJobs.monthlyReport(month)
    const figures = report.lots.find((l) => l.lot_id === lot.lotId)
    // The month is the lot's (Berlin) month: a stay made now is in it unless this runs at a
    // month's edge, which the UTC month here would then disagree with.
    expect(figures).toMatchObject({
      exits: 1,
      revenue_gross: 300,
      refunds: 0,
      reservations: 0,
      currency: 'EUR',
    })
    expect(figures?.entries).toBeGreaterThanOrEqual(2)
    expect(figures?.average_stay_minutes).toBeGreaterThanOrEqual(0)

    // The job of next month's first days sends this month, once.
    const nextMonth = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 2))
    const [first, second] = await Promise.all([
      platform.services.mailJobs.sendMonthlyReport(nextMonth),
      platform.services.mailJobs.sendMonthlyReport(nextMonth),
    ])
    expect([first.sent, second.sent].sort()).toEqual([0, 1])
    expect(await platform.services.mailJobs.sendMonthlyReport(nextMonth)).toMatchObject({
      sent: 0,
      already: 1,
    })
    const mails = await smtp.waitFor((m) => m.subject === `Parking activity report ${month}`)
    await new Promise((r) => setTimeout(r, 200))
    expect(smtp.messages.filter((m) => m.subject === `Parking activity report ${month}`)).toHaveLength(1)
    expect(mails[0]?.to).toEqual([admin.email])
    expect(mails[0]?.html).toContain(`data-month="${month}"`)
    expect(mails[0]?.html).toContain('3.00 EUR')
    expect(mails[0]?.text).toContain('1 exits')

    // The same page over HTTP, for admins only.
    const page = await send('GET', `/api/v1/reports/monthly/${month}`, admin.token)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    expect(await page.text()).toContain('3.00 EUR')
    expect((await send('GET', `/api/v1/reports/monthly/${month}`, operator.token)).status).toBe(403)
    expect((await send('GET', `/api/v1/reports/monthly/${month}`, active.token)).status).toBe(403)
    expect((await send('GET', '/api/v1/reports/monthly/2025-13', admin.token)).status).toBe(400)

    // Through the scheduler (the previous month, whatever it held): once.
    await platform.scheduler.runNow('reports.monthly')
    expect(await platform.scheduler.runNow('reports.monthly')).toMatchObject({ sent: 0, already: 1 })
  })

  it('sends again to an admin whose e-mail failed, and only to that admin', async () => {
    const [told, refused] = [randomUUID(), randomUUID()]
    const admins = [told, refused].map((id) => ({
      id,
      email: `${id}@example.com`,
      full_name: 'A',
      created_at: new Date().toISOString(),
    }))
    const sent: string[] = []
    let refuse = true
    const jobs = createMailJobsService({
      repo: createJobsRepository(db),
      mailer: {
        kind: 'outbox',
        outbox: undefined,
        send: async (m) => {
          if (refuse && m.to === `${refused}@example.com`) throw new Error('451 Try again later')
          sent.push(String(m.to))
          return { message_id: randomUUID(), accepted: [String(m.to)] }
        },
        close: () => {},
      },
      accounts: async () => ({ data: admins, next_cursor: null }),
      lots: async () => ({ data: [], next_cursor: null }),
      purgeExports: async () => 0,
      publicUrl: () => 'http://localhost',
      logger: { warn: () => {}, debug: () => {}, info: () => {} } as never,
      settings: { inactiveDays: 30, idempotencyRetentionHours: 48, reservationSlotMinutes: 30 },
    })
    const at = new Date('2030-02-03T08:00:00Z')
    expect(await jobs.sendMonthlyReport(at)).toMatchObject({ month: '2030-01', sent: 1, failed: 1 })
    expect(sent).toEqual([`${told}@example.com`])
    refuse = false
    expect(await jobs.sendMonthlyReport(at)).toMatchObject({ sent: 1, already: 1, failed: 0 })
    expect(sent).toEqual([`${told}@example.com`, `${refused}@example.com`])
    expect(await jobs.sendMonthlyReport(at)).toMatchObject({ sent: 0, already: 2 })
    expect(sent).toHaveLength(2)
  })
})

describe('data.purge', () => {
  it('deletes what is past its retention, and a second run deletes nothing', async () => {
    const now = Date.now()
    const [oldKey, newKey, oldEvent, newEvent] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()]
    const space = randomUUID()
    const pastSlot = `${space}:2020-01-01T10:00:00.000Z`
    const futureSlot = `${space}:2999-01-01T10:00:00.000Z`
    const key = (id: string, hoursAgo: number) => ({
      _id: `test:${id}` as never,
      resource_id: id,
      fingerprint: 'x',
      done: true,
      created_at: new Date(now - hoursAgo * 3_600_000),
    })
    await db.collection('idempotency_keys').insertMany([key(oldKey, 49), key(newKey, 47)])
    await db.collection('stripe_events').insertMany([
      {
        _id: oldEvent as never,
        type: 'payment_intent.succeeded',
        created_at: new Date(now - 31 * 86_400_000),
      },
      {
        _id: newEvent as never,
        type: 'payment_intent.succeeded',
        created_at: new Date(now - 29 * 86_400_000),
      },
    ])
    await db.collection('reservation_slots').insertMany([
      { _id: pastSlot as never, reservation_id: randomUUID(), space_id: space, created_at: new Date(now) },
      { _id: futureSlot as never, reservation_id: randomUUID(), space_id: space, created_at: new Date(now) },
    ])

    const first = await platform.scheduler.runNow('data.purge')
    expect(first).toMatchObject({ idempotency_keys: 1, reservation_slots: 1, stripe_events: 1 })
    expect(await platform.scheduler.runNow('data.purge')).toEqual({
      idempotency_keys: 0,
      exports: 0,
      audit_log: 0,
      webhook_deliveries: 0,
      webhook_attempts: 0,
      webhook_events: 0,
      reservation_slots: 0,
      stripe_events: 0,
    })
    const exists = async (collection: string, id: string) =>
      (await db.collection(collection).countDocuments({ _id: id as never })) === 1
    expect(await exists('idempotency_keys', `test:${oldKey}`)).toBe(false)
    expect(await exists('idempotency_keys', `test:${newKey}`)).toBe(true)
    expect(await exists('stripe_events', oldEvent)).toBe(false)
    expect(await exists('stripe_events', newEvent)).toBe(true)
    expect(await exists('reservation_slots', pastSlot)).toBe(false)
    expect(await exists('reservation_slots', futureSlot)).toBe(true)
  })

  it('deletes finished webhook deliveries past the retention, their attempts and the events no delivery names', async () => {
    const now = Date.now()
    const [old, recent] = [now - 31 * 86_400_000, now - 29 * 86_400_000]
    const tag = randomUUID().replaceAll('-', '').slice(0, 19)
    // Delivery ids start with 12 hex digits of the event time; three old ones side by side.
    const deliveryId = (ms: number, first: string) => `whd_${ms.toString(16).padStart(12, '0')}${first}${tag}`
    const [finished, pending, replayed, fresh, replay] = [
      deliveryId(old, 'a'),
      deliveryId(old, 'b'),
      deliveryId(old, 'c'),
      deliveryId(recent, 'd'),
      deliveryId(now, 'e'),
    ]
    const event = (name: string, ms: number) => ({
      _id: `evt_${name}${tag}` as never,
      type: 'session.closed',
      occurred_at: new Date(ms),
      lot_id: null,
      data: {},
      recorded_at: new Date(ms),
    })
    const delivery = (id: string, eventName: string, status: string, ms: number) => ({
      _id: id as never,
      event_id: `evt_${eventName}${tag}`,
      event_type: 'session.closed',
      subscription_id: 'sub',
      lot_id: null,
      status,
      attempts: 1,
      next_attempt_at: null,
      created_at: new Date(ms),
    })
    const attempt = (id: string, n: number) => ({
      _id: `${id}:${n}` as never,
      delivery_id: id,
      subscription_id: 'sub',
      n,
      at: new Date(old),
      succeeded: false,
      duration_ms: 1,
    })
    await db
      .collection('webhook_events')
      .insertMany([
        event('finished', old),
        event('pending', old),
        event('replayed', old),
        event('fresh', recent),
        event('orphan', old),
      ])
    await db
      .collection('webhook_deliveries')
      .insertMany([
        delivery(finished, 'finished', 'succeeded', old),
        delivery(pending, 'pending', 'pending', old),
        delivery(replayed, 'replayed', 'failed', old),
        delivery(fresh, 'fresh', 'failed', recent),
        delivery(replay, 'replayed', 'pending', now),
      ])
    await db
      .collection('webhook_attempts')
      .insertMany([
        attempt(finished, 1),
        attempt(finished, 2),
        attempt(pending, 1),
        attempt(replayed, 1),
        attempt(fresh, 1),
      ])

    expect(await platform.scheduler.runNow('data.purge')).toMatchObject({
      webhook_deliveries: 2,
      webhook_attempts: 3,
      webhook_events: 2,
    })
    expect(await platform.scheduler.runNow('data.purge')).toMatchObject({
      webhook_deliveries: 0,
      webhook_attempts: 0,
      webhook_events: 0,
    })
    const ids = async (collection: string) =>
      (
        await db
          .collection(collection)
          .find({}, { projection: { _id: 1 } })
          .toArray()
      )
        .map((d) => String(d._id))
        .filter((id) => id.includes(tag))
        .sort()
    expect(await ids('webhook_deliveries')).toEqual([pending, fresh, replay].sort())
    expect(await ids('webhook_attempts')).toEqual([`${pending}:1`, `${fresh}:1`].sort())
    // The pending delivery's and the replay's events stay however old; the recent one stays.
    expect(await ids('webhook_events')).toEqual(
      ['pending', 'replayed', 'fresh'].map((name) => `evt_${name}${tag}`).sort(),
    )
  })
})

describe('the admins view of jobs', () => {
  it('lists every defined job with its schedule', async () => {
    const res = await send('GET', '/api/v1/jobs', admin.token)
    expect(res.status).toBe(200)
    const { data } = await json(res)
    const names = data.map((j: { name: string }) => j.name)
    // Every job of this issue and the earlier ones (others may join), by name.
    expect(names).toEqual(expect.arrayContaining(allJobs))
    expect(names).toEqual([...names].sort())
    const byName = Object.fromEntries(data.map((j: { name: string }) => [j.name, j]))
    expect(byName['payments.reconcile']).toMatchObject({ schedule: 'every 1 minute', fail_count: 0 })
    expect(byName['memberships.renewals']).toMatchObject({ schedule: 'every 10 minutes' })
    expect(byName['reminders.inactive']).toMatchObject({ schedule: 'every 1 day' })
    expect(byName['exports.run']).toMatchObject({ schedule: null })
    for (const name of allJobs) expect(byName[name].description).toEqual(expect.any(String))
    // Runs made here show as the last manual run.
    expect(byName['data.purge'].last_manual_run).toMatchObject({
      finished_at: expect.any(String),
      error: null,
    })
  })

  it('runs a job now and answers its result; an unknown job is a 404', async () => {
    const res = await send('POST', '/api/v1/jobs/data.purge/run', admin.token)
    expect(res.status).toBe(200)
    expect(await json(res)).toMatchObject({
      name: 'data.purge',
      status: 'succeeded',
      error: null,
      result: { idempotency_keys: 0, exports: 0, reservation_slots: 0, stripe_events: 0 },
    })
    expect((await send('POST', '/api/v1/jobs/no.such-job/run', admin.token)).status).toBe(404)
    expect((await send('POST', '/api/v1/jobs/Bad Name/run', admin.token)).status).toBe(400)
  })

  it.each([
    ['customer', () => active],
    ['operator', () => operator],
  ])('refuses a %s (403) and an anonymous caller (401)', async (_role, who) => {
    expect((await send('GET', '/api/v1/jobs', who().token)).status).toBe(403)
    expect((await send('POST', '/api/v1/jobs/data.purge/run', who().token)).status).toBe(403)
    expect((await send('GET', '/api/v1/jobs', undefined)).status).toBe(401)
  })
})

describe('agenda on FerretDB', () => {
  it('schedules the new jobs and shows their next runs', async () => {
    const scheduled = await startTestPlatform({ ...testAdmin, JOBS_ENABLED: 'true' })
    try {
      const jobs = await scheduled.services.jobs.list()
      const byName = Object.fromEntries(jobs.data.map((j) => [j.name, j]))
      for (const name of ['data.purge', 'reminders.inactive', 'reports.monthly', 'exports.sweep']) {
        expect(byName[name]?.next_run_at).toEqual(expect.any(String))
      }
      expect(byName['exports.run']?.next_run_at).toBeNull()

      // A restart keeps the stored schedule: every() would set now + 1 day again, and a
      // deployment restarting daily would never run its daily jobs.
      const daily = ['data.purge', 'reminders.inactive', 'reports.monthly']
      await new Promise((r) => setTimeout(r, 50))
      await scheduled.scheduler.stop()
      await scheduled.scheduler.start()
      const after = Object.fromEntries((await scheduled.services.jobs.list()).data.map((j) => [j.name, j]))
      for (const name of daily) expect(after[name]?.next_run_at).toBe(byName[name]?.next_run_at)
    } finally {
      await scheduled.stop()
    }
  }, 60_000)
})
