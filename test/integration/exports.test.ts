import { randomUUID } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { uuidv7 } from '../../src/shared/ids.ts'
import { connectDatabase } from '../../src/shared/mongo.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { createHourlyRate, createLot, enterVehicle, type TestLot, uniquePlate } from '../harness/facility.ts'
import { json, requester } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'
import { scratchDir } from '../harness/services.ts'
import { startSmtp, type TestSmtp } from '../harness/smtp.ts'

// Seed 003's CSV export of parking history, end to end against the real services: request ->
// status -> e-mail received on a real SMTP server -> the owner downloads the right rows ->
// anyone else gets 404. Jobs are off (JOBS_ENABLED false): the export runs in-process.

let platform: TestPlatform
let smtp: TestSmtp
let admin: Account
let operator: Account
let owner: Account
let other: Account
let lot: TestLot
let paidSession: string
let openSession: string

const send = requester(() => platform)

async function waitForStatus(id: string, token: string, statuses = ['ready', 'failed']) {
  const deadline = Date.now() + 20_000
  for (;;) {
    const view = await json(await send('GET', `/api/v1/exports/${id}`, token))
    if (statuses.includes(view.status)) return view
    if (Date.now() > deadline) throw new Error(`export ${id} still ${view.status}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

function parseCsv(text: string): Record<string, string>[] {
  const [header = '', ...lines] = text.trimEnd().split('\r\n')
  const columns = header.split(',')
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [columns[i] ?? '', v])))
}

beforeAll(async () => {
  smtp = await startSmtp()
  platform = await startTestPlatform({
    ...testAdmin,
    ACCOUNT_APPROVAL_REQUIRED: 'false',
    JOBS_ENABLED: 'false',
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Parking <parking@example.com>',
  })
  admin = await signInAdmin(platform)
  operator = await createAccount(platform, admin, 'operator')
  owner = await createAccount(platform, admin, 'customer')
  other = await createAccount(platform, admin, 'customer')
  lot = await createLot(platform, admin, { spaces: { STANDARD: 3 }, currency: 'EUR' })
  await createHourlyRate(platform, admin, lot.lotId, 400)
  const plate = uniquePlate()
  const vehicle = await send('POST', '/api/v1/vehicles', owner.token, {
    license_plate: plate,
    vehicle_type_id: 'standard',
  })
  expect(vehicle.status).toBe(201)
  // One stay paid in cash and closed, then one still open.
  const first = await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })
  paidSession = first.session.id
  const paid = await send('POST', '/api/v1/payments', operator.token, {
    session_id: paidSession,
    payment_method: 'cash',
    amount: 400,
    tendered: 500,
  })
  expect(paid.status).toBe(201)
  const exit = await send('POST', '/api/v1/sessions/exit', operator.token, {
    ticket_number: first.ticket_number,
  })
  expect(exit.status).toBe(200)
  openSession = (await enterVehicle(platform, operator, { license_plate: plate, lot_id: lot.lotId })).session
    .id
})

afterAll(async () => {
  await platform?.stop()
  await smtp?.stop()
})

describe('CSV export of parking history', () => {
  it('is queued, made, e-mailed to its owner, and downloaded by the owner only', async () => {
    const requested = await send('POST', '/api/v1/exports/parking-history', owner.token, {})
    expect(requested.status).toBe(202)
    const queued = await json(requested)
    expect(queued).toMatchObject({ kind: 'parking_history', status: 'queued', download_path: null })

    const ready = await waitForStatus(queued.id, owner.token)
    expect(ready).toMatchObject({
      status: 'ready',
      rows: 2,
      download_path: `/api/v1/exports/${queued.id}/download`,
    })
    expect(ready.size).toBeGreaterThan(100)
    expect(Date.parse(ready.expires_at) - Date.parse(ready.created_at)).toBe(7 * 86_400_000)

    // The e-mail, received by a real SMTP server (with authentication).
    const [mail] = await smtp.waitFor((m) => m.to.includes(owner.email))
    expect(mail?.from).toBe('parking@example.com')
    expect(mail?.subject).toBe('Your parking history export is ready')
    expect(mail?.text).toContain(`${platform.url}/api/v1/exports/${queued.id}/download`)
    expect(mail?.text).toContain('2 sessions')

    const download = await send('GET', ready.download_path, owner.token)
    expect(download.status).toBe(200)
    expect(download.headers.get('content-type')).toMatch(/^text\/csv/)
    expect(download.headers.get('content-disposition')).toMatch(/^attachment; filename="parking-history-/)
    const text = await download.text()
    expect(text.split('\r\n')[0]).toBe(
      'session_id,ticket_number,lot_id,lot_name,license_plate,entry_time,exit_time,duration_minutes,status,fee_total,amount_paid,amount_refunded,currency,payment_methods,receipt_numbers',
    )
    const rows = parseCsv(text)
    expect(rows.map((r) => r.session_id)).toEqual([paidSession, openSession])
    expect(rows[0]).toMatchObject({
      lot_id: lot.lotId,
      status: 'closed',
      fee_total: '400',
      amount_paid: '400',
      amount_refunded: '0',
      currency: 'EUR',
      payment_methods: 'cash',
    })
    expect(rows[0]?.receipt_numbers).toMatch(/^RCP-/)
    expect(rows[1]).toMatchObject({ status: 'active', exit_time: '', fee_total: '', amount_paid: '0' })

    // Another customer learns nothing: 404 on the status and on the file.
    expect((await send('GET', `/api/v1/exports/${queued.id}`, other.token)).status).toBe(404)
    const stolen = await send('GET', `/api/v1/exports/${queued.id}/download`, other.token)
    expect(stolen.status).toBe(404)
    expect(await json(stolen)).toMatchObject({ code: 'NOT_FOUND' })

    // Running it again (a job queued twice, the sweep) does nothing more: one e-mail.
    expect(await platform.services.exports.run(queued.id)).toEqual({ ran: false })
    expect(await platform.scheduler.runNow('exports.sweep')).toMatchObject({ ran: 0, notified: 0 })
    expect(await platform.scheduler.runNow('exports.run', { export_id: queued.id })).toEqual({ ran: false })
    await new Promise((r) => setTimeout(r, 200))
    expect(smtp.to(owner.email)).toHaveLength(1)
  })

  it('keeps to the range asked for and refuses a range that ends before it starts', async () => {
    const future = await send('POST', '/api/v1/exports/parking-history', owner.token, {
      from: '2999-01-01T00:00:00Z',
    })
    expect(future.status).toBe(202)
    const ready = await waitForStatus((await json(future)).id, owner.token)
    expect(ready).toMatchObject({ status: 'ready', rows: 0, from: '2999-01-01T00:00:00.000Z', to: null })
    const file = await send('GET', ready.download_path, owner.token)
    expect(parseCsv(await file.text())).toEqual([])

    const reversed = await send('POST', '/api/v1/exports/parking-history', owner.token, {
      from: '2025-02-01T00:00:00Z',
      to: '2025-01-01T00:00:00Z',
    })
    expect(reversed.status).toBe(422)
    expect(await json(reversed)).toMatchObject({ code: 'UNPROCESSABLE', reason: 'empty_range' })
    const unknownField = await send('POST', '/api/v1/exports/parking-history', owner.token, {
      format: 'xlsx',
    })
    expect(unknownField.status).toBe(400)
  })

  it('is run by the sweep when its run was never queued, once', async () => {
    const db = await connectDatabase(platform.urls.mongodb)
    const id = randomUUID()
    try {
      const now = new Date()
      await db.collection('exports').insertOne({
        _id: id as never,
        user_id: other.id,
        kind: 'parking_history',
        from: null,
        to: null,
        status: 'queued',
        rows: null,
        size: null,
        storage_key: null,
        error: null,
        notified: false,
        created_at: now,
        started_at: null,
        ready_at: null,
        expires_at: new Date(now.getTime() + 86_400_000),
      })
    } finally {
      await db.close()
    }
    const [first, second] = await Promise.all([
      platform.scheduler.runNow('exports.sweep'),
      platform.scheduler.runNow('exports.sweep'),
    ])
    expect([first, second].map((r) => (r as { ran: number }).ran).sort()).toEqual([0, 1])
    expect(await platform.scheduler.runNow('exports.sweep')).toMatchObject({ ran: 0 })
    expect(await json(await send('GET', `/api/v1/exports/${id}`, other.token))).toMatchObject({
      status: 'ready',
      rows: 0,
    })
    await smtp.waitFor((m) => m.to.includes(other.email))
    await new Promise((r) => setTimeout(r, 200))
    expect(smtp.to(other.email)).toHaveLength(1)
  })

  it('is purged (file and record) after its retention, once', async () => {
    const requested = await json(await send('POST', '/api/v1/exports/parking-history', other.token, {}))
    const ready = await waitForStatus(requested.id, other.token)
    expect((await send('GET', ready.download_path, other.token)).status).toBe(200)
    const later = new Date(Date.now() + 8 * 86_400_000)
    const purged = await platform.services.exports.purgeExpired(later)
    expect(purged).toBeGreaterThanOrEqual(1)
    expect(await platform.services.exports.purgeExpired(later)).toBe(0)
    expect((await send('GET', `/api/v1/exports/${requested.id}`, other.token)).status).toBe(404)
    expect((await send('GET', `/api/v1/exports/${requested.id}/download`, other.token)).status).toBe(404)
  })

  it('answers 404 for an unknown export, and only customers may export', async () => {
    const unknown = randomUUID()
    expect((await send('GET', `/api/v1/exports/${unknown}`, owner.token)).status).toBe(404)
    expect((await send('GET', `/api/v1/exports/${unknown}/download`, owner.token)).status).toBe(404)
    expect((await send('GET', '/api/v1/exports/not-a-uuid', owner.token)).status).toBe(400)
    expect((await send('POST', '/api/v1/exports/parking-history', undefined, {})).status).toBe(401)
    for (const staff of [admin, operator]) {
      expect((await send('POST', '/api/v1/exports/parking-history', staff.token, {})).status).toBe(403)
      expect((await send('GET', `/api/v1/exports/${unknown}`, staff.token)).status).toBe(403)
    }
  })
})

/** An export record as the service writes it, made `minutesAgo` before now. */
function exportDoc(userId: string, minutesAgo: number, fields: Record<string, unknown> = {}) {
  const at = new Date(Date.now() - minutesAgo * 60_000)
  return {
    _id: uuidv7(at.getTime()) as never,
    user_id: userId,
    kind: 'parking_history',
    from: null,
    to: null,
    status: 'queued',
    rows: null,
    size: null,
    storage_key: null,
    error: null,
    notified: false,
    created_at: at,
    started_at: null,
    ready_at: null,
    expires_at: new Date(at.getTime() + 86_400_000),
    ...fields,
  }
}

describe('the exports sweep', () => {
  it('sends an e-mail that failed even behind 200 older ready exports already told', async () => {
    const db = await connectDatabase(platform.urls.mongodb)
    const ready = { status: 'ready', rows: 0, size: 10, storage_key: 'x' }
    const told = Array.from({ length: 201 }, (_, i) =>
      exportDoc(other.id, 60 * 24 * 300 - i, { ...ready, notified: true, ready_at: new Date() }),
    )
    const untold = exportDoc(other.id, 30, { ...ready, ready_at: new Date(Date.now() - 20 * 60_000) })
    try {
      await db.collection('exports').insertMany([...told, untold])
    } finally {
      await db.close()
    }
    expect(await platform.services.exports.sweep()).toMatchObject({ notified: 1 })
    await smtp.waitFor((m) => m.text.includes(`Export id: ${untold._id}`))
    expect(await platform.services.exports.sweep()).toMatchObject({ notified: 0 })
  })

  it('takes over a notice claim left by a sender that died, not one at work', async () => {
    const db = await connectDatabase(platform.urls.mongodb)
    const ready = {
      status: 'ready',
      rows: 0,
      size: 10,
      storage_key: 'x',
      ready_at: new Date(Date.now() - 20 * 60_000),
    }
    const dead = exportDoc(other.id, 30, ready)
    const busy = exportDoc(other.id, 30, ready)
    try {
      await db.collection('exports').insertMany([dead, busy])
      await db.collection('export_notices').insertMany([
        { _id: dead._id, created_at: new Date(Date.now() - 10 * 60_000) },
        { _id: busy._id, created_at: new Date(Date.now() - 30_000) },
      ])
    } finally {
      await db.close()
    }
    expect(await platform.services.exports.sweep()).toMatchObject({ notified: 1 })
    await smtp.waitFor((m) => m.text.includes(`Export id: ${dead._id}`))
    await new Promise((r) => setTimeout(r, 200))
    expect(smtp.messages.filter((m) => m.text.includes(`Export id: ${busy._id}`))).toHaveLength(0)
    expect(await platform.services.exports.sweep()).toMatchObject({ notified: 0 })
    expect(smtp.messages.filter((m) => m.text.includes(`Export id: ${dead._id}`))).toHaveLength(1)
  })
})

describe('an export whose run died before its first write', () => {
  it('is run again by the sweep once its run claim is older than a run may take, once', async () => {
    const db = await connectDatabase(platform.urls.mongodb)
    const dead = exportDoc(other.id, 30)
    const young = exportDoc(other.id, 30)
    try {
      await db.collection('exports').insertMany([dead, young])
      await db.collection('export_runs').insertMany([
        { _id: dead._id, created_at: new Date(Date.now() - 20 * 60_000) },
        { _id: young._id, created_at: new Date(Date.now() - 60_000) },
      ])
    } finally {
      await db.close()
    }
    const [first, second] = await Promise.all([
      platform.services.exports.sweep(),
      platform.services.exports.sweep(),
    ])
    // Once in all: by the sweep that dropped the dead claim, or by the other one's run meeting
    // the export with no claim left.
    expect(first.ran + second.ran).toBe(1)
    expect(first.rerun_dead + second.rerun_dead).toBeLessThanOrEqual(1)
    expect(await platform.services.exports.sweep()).toMatchObject({ ran: 0, rerun_dead: 0 })
    expect(await json(await send('GET', `/api/v1/exports/${dead._id}`, other.token))).toMatchObject({
      status: 'ready',
    })
    // A claim younger than that may belong to a run at work: left alone.
    expect(await json(await send('GET', `/api/v1/exports/${young._id}`, other.token))).toMatchObject({
      status: 'queued',
    })
    await smtp.waitFor((m) => m.text.includes(`Export id: ${dead._id}`))
    await new Promise((r) => setTimeout(r, 200))
    expect(smtp.messages.filter((m) => m.text.includes(`Export id: ${dead._id}`))).toHaveLength(1)
  })
})

describe('e-mail on embedded defaults', () => {
  it('lands in the outbox directory as an .eml file', async () => {
    const dataDir = scratchDir('outbox')
    const local = await startTestPlatform({
      ...testAdmin,
      ACCOUNT_APPROVAL_REQUIRED: 'false',
      JOBS_ENABLED: 'false',
      DATA_DIR: dataDir,
    })
    try {
      const localAdmin = await signInAdmin(local)
      const customer = await createAccount(local, localAdmin, 'customer')
      const res = await local.request('/api/v1/exports/parking-history', {
        method: 'POST',
        ...jsonBody({}, bearer(customer.token)),
      })
      expect(res.status).toBe(202)
      await local.scheduler.idle()
      const outbox = join(dataDir, 'outbox')
      const files = (await readdir(outbox)).filter((f) => f.endsWith('.eml'))
      expect(files).toHaveLength(1)
      expect(files[0]).toMatch(/^\d{8}T\d{9}Z-[0-9a-f]{8}\.eml$/)
      const eml = await readFile(join(outbox, files[0] ?? ''), 'utf8')
      expect(eml).toContain(`To: ${customer.email}`)
      expect(eml).toContain('Subject: Your parking history export is ready')
    } finally {
      await local.stop()
    }
  })
})
