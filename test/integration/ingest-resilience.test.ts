import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { sensorTopics } from '../../src/modules/occupancy/occupancy.contract.ts'
import type { OccupancyRepository } from '../../src/modules/occupancy/occupancy.repository.ts'
import { changeOf, compareIds, recordOf } from '../../src/modules/occupancy/occupancy.state.ts'
import { createPersister } from '../../src/modules/occupancy/persister.ts'
import { uuidv7 } from '../../src/shared/ids.ts'
import { createLogger } from '../../src/shared/logger.ts'
import { createMetrics } from '../../src/shared/metrics.ts'
import { connectDatabase, type Database } from '../../src/shared/mongo.ts'
import { connectRedis, type RedisClient } from '../../src/shared/redis.ts'
import { bearer, createAccount, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { json } from '../harness/http.ts'
import { isolatedDatabase, startTestPlatform, type TestPlatform } from '../harness/platform.ts'
import { type ServiceSet, scratchDir, startServices } from '../harness/services.ts'

// The sensor ingestion pipeline under failure: a dependency restarted in the middle of a burst of
// QoS 1 messages must lose nothing and record nothing twice. Each scenario that restarts a
// service runs on a private one; every scenario publishes on a broker of its own, so that other
// test files' ingest doors never see these messages.

const DEVICES = 200
const PER_DEVICE = 50 // 10,000 messages; occupied alternates, so every message is a change
const LAST_SEQ = PER_DEVICE - 1
const TOTAL = DEVICES * PER_DEVICE
const occupiedAt = (seq: number) => seq % 2 === 0
// A burst with a fault, its settling and the history check. The check reads the burst's 10,000
// rows back from FerretDB and counts them all: 10 s on a loaded 2-core box, and a SIGKILL test
// took 60 s in all with five busy processes per core.
const BURST_TEST_MS = 120_000

const ingestEnv = (extra: Record<string, string> = {}) => ({
  INGEST_ENABLED: 'true',
  OCCUPANCY_DWELL_MS: '0',
  ...extra,
})

const log = (line: string) => process.stdout.write(`[ingest-resilience] ${line}\n`)

async function until(what: string, predicate: () => Promise<boolean>, timeoutMs: number, everyMs = 100) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await predicate().catch(() => false)) return
    await sleep(everyMs)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

// ---------------------------------------------------------------------------------------------
// A fleet: one lot, level and zone with a space per device, placed and bound in the hot state.

type Fleet = {
  lotId: string
  levelId: string
  zoneId: string
  boot: string
  devices: { id: string; space: string }[]
}

async function placeFleet(platform: TestPlatform, size = DEVICES): Promise<Fleet> {
  const fleet: Fleet = {
    lotId: uuidv7(),
    levelId: uuidv7(),
    zoneId: uuidv7(),
    boot: `boot-${randomBytes(3).toString('hex')}`,
    devices: Array.from({ length: size }, (_, i) => ({
      id: `d${String(i).padStart(3, '0')}-${randomBytes(3).toString('hex')}`,
      space: uuidv7(),
    })),
  }
  await platform.occupancy.index.upsertSpaces(
    fleet.devices.map((d, i) => ({
      spaceId: d.space,
      lotId: fleet.lotId,
      levelId: fleet.levelId,
      zoneId: fleet.zoneId,
      number: String(i + 1),
      type: 'STANDARD' as const,
      overlay: null,
    })),
  )
  for (const d of fleet.devices) await platform.occupancy.index.bindDevice(d.id, d.space)
  return fleet
}

const reading = (fleet: Fleet, deviceId: string, seq: number) =>
  Buffer.from(
    JSON.stringify({
      device_id: deviceId,
      boot_id: fleet.boot,
      seq,
      measured_at: Date.now(),
      occupied: occupiedAt(seq),
    }),
  )

// ---------------------------------------------------------------------------------------------
// An honest publisher: a message counts as delivered only when a PUBACK says the broker took it
// for a subscriber. Each device publishes its readings in order, one at a time (200 devices give
// 200 in flight). A publish that fails, times out or finds no subscriber is sent again (bounded);
// mqtt.js also resends its unacknowledged store when it reconnects, so the broker may see a
// message twice, and the pipeline drops the copy by (device, boot, seq).

type BurstReport = { acked: number; resent: number; noSubscriber: number; reconnects: number; ms: number }

type PublisherOptions = {
  /** Resolves when the publisher may reconnect after losing the broker (default: at once). */
  reconnectWhen?: () => Promise<void>
}

async function connectPublisher(url: string, options: PublisherOptions = {}) {
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId: `burst-${randomBytes(4).toString('hex')}`,
    clean: false,
    properties: { sessionExpiryInterval: 300 },
    reconnectPeriod: 0, // reconnects below, when options.reconnectWhen allows
    connectTimeout: 2_000,
    keepalive: 10,
  })
  const report: BurstReport = { acked: 0, resent: 0, noSubscriber: 0, reconnects: 0, ms: 0 }
  let ending = false
  client.on('connect', () => (client.stream as Partial<Socket>).setNoDelay?.(true))
  client.on('error', () => {})
  client.on('close', () => {
    if (ending || report.reconnects >= 200) return
    report.reconnects++
    void sleep(100)
      .then(() => options.reconnectWhen?.())
      .then(() => {
        if (!ending) client.reconnect()
      })
      .catch(() => {}) // not reconnecting: the deliveries under way fail, bounded, and say so
  })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    setTimeout(() => reject(new Error('publisher could not connect')), 5_000).unref()
  })

  const publishOnce = async (topic: string, payload: Buffer, timeoutMs: number) => {
    let timer: NodeJS.Timeout | undefined
    const sent = client.publishAsync(topic, payload, { qos: 1 })
    sent.catch(() => {}) // a timed-out attempt may still settle later
    try {
      return await Promise.race([
        sent,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('no PUBACK in time')), timeoutMs)
        }),
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Publishes until the broker acknowledges it for a subscriber; bounded in attempts. */
  const deliver = async (topic: string, payload: Buffer) => {
    for (let attempt = 0; attempt < 100; attempt++) {
      if (attempt > 0) {
        report.resent++
        await sleep(50)
      }
      try {
        const ack = (await publishOnce(topic, payload, 3_000)) as { reasonCode?: number } | undefined
        if (ack?.reasonCode === 16) {
          report.noSubscriber++ // "no matching subscribers": nobody would get it
          continue
        }
        report.acked++
        return
      } catch {}
    }
    throw new Error(`${topic}: not acknowledged after 100 attempts`)
  }

  return {
    report,
    deliver,
    /** Every device's readings 0..LAST_SEQ, devices in parallel; while `hold` gives a promise, none. */
    async burst(
      fleet: Fleet,
      hooks: { hold?: () => Promise<unknown> | undefined } = {},
    ): Promise<BurstReport> {
      const began = performance.now()
      await Promise.all(
        fleet.devices.map(async (d) => {
          for (let seq = 0; seq < PER_DEVICE; seq++) {
            await hooks.hold?.()
            await deliver(sensorTopics.state(d.id), reading(fleet, d.id, seq))
          }
        }),
      )
      report.ms = Math.round(performance.now() - began)
      return report
    },
    async close() {
      ending = true
      await client.endAsync(true)
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Settling and checking.

const metricValue = async (platform: TestPlatform, name: string, labels: Record<string, string> = {}) => {
  const metric = platform.services.metrics.registry.getSingleMetric(name)
  if (!metric) return 0
  const { values } = await metric.get()
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0)
}

/**
 * Waits until every device's newest reading is in the hot state and the persister caught up;
 * answers how long each took (ms).
 */
async function settle(platform: TestPlatform, fleet: Fleet, timeoutMs = 30_000) {
  const began = performance.now()
  const ids = fleet.devices.map((d) => d.id)
  await until(
    'every device at its last sequence number',
    async () => (await platform.occupancy.index.deviceHealth(ids)).every((h) => h.seq === LAST_SEQ),
    timeoutMs,
  )
  const hot = elapsed(began)
  await until(
    'the persister backlog to reach 0',
    async () => (await platform.occupancy.persister.backlog()) === 0,
    timeoutMs,
  )
  return `hot state in ${hot} ms, history in ${elapsed(began) - hot} ms more`
}

type HistoryRow = {
  _id: string
  space_id: string
  seq: number | null
  sensed_from: string
  sensed_to: string
}

/**
 * The checks a burst ends with: each space's state is its device's highest-seq reading, in the
 * hot state and in the zone counts; and MongoDB holds each committed change exactly once: per
 * space the rows form an unbroken chain from unknown to the final state (a lost row breaks it)
 * with strictly increasing sequence numbers (a duplicate repeats one), and the database has as
 * many rows as changes ever entered the Redis stream. With `everyReading`, no reading was lost
 * either: occupied alternates, so each reading is a change with a row of its own.
 */
async function verifyOutcome(platform: TestPlatform, checks: Checks, fleet: Fleet, everyReading: boolean) {
  const { redis, db, prefix } = checks
  const final = occupiedAt(LAST_SEQ) ? 'occupied' : 'free'
  const wrong: string[] = []
  for (const d of fleet.devices) {
    const space = await platform.occupancy.state.space(d.space)
    if (space?.sensed !== final) wrong.push(`${d.id}: ${space?.sensed}`)
  }
  expect(wrong, 'spaces whose hot state is not the last reading').toEqual([])
  const res = await platform.request(`/api/v1/zones/${fleet.zoneId}/availability`)
  expect(res.status).toBe(200)
  expect(await json(res)).toMatchObject({
    total: fleet.devices.length,
    available: final === 'free' ? fleet.devices.length : 0,
    occupied: final === 'occupied' ? fleet.devices.length : 0,
    unknown: 0,
  })
  const rows = await db
    .collection<HistoryRow>('space_history')
    // The sensed chain: readings only (a space's placement is a row of its own, without a seq).
    .find(
      { lot_id: fleet.lotId, kind: 'sensor' },
      { projection: { space_id: 1, seq: 1, sensed_from: 1, sensed_to: 1 } },
    )
    .toArray()
  const bySpace = new Map<string, HistoryRow[]>()
  for (const row of rows) bySpace.set(row.space_id, [...(bySpace.get(row.space_id) ?? []), row])
  const streamId = (row: HistoryRow) => row._id.slice(row._id.indexOf('/') + 1)
  const every = Array.from({ length: PER_DEVICE }, (_, seq) => seq).join(',')
  let broken = 0
  let duplicated = 0
  let missing = 0
  const wrongChains: { device: Fleet['devices'][number]; chain: HistoryRow[] }[] = []
  for (const d of fleet.devices) {
    const chain = (bySpace.get(d.space) ?? []).sort((a, b) => compareIds(streamId(a), streamId(b)))
    const before = broken + duplicated + missing
    let previous = 'unknown'
    let previousSeq = -1
    for (const row of chain) {
      if (row.sensed_from !== previous) broken++
      if ((row.seq ?? -1) <= previousSeq) duplicated++
      previous = row.sensed_to
      previousSeq = row.seq ?? -1
    }
    if (previous !== final) broken++
    if (everyReading && chain.map((row) => row.seq).join(',') !== every) missing++
    if (broken + duplicated + missing > before) wrongChains.push({ device: d, chain })
  }
  // The platform has this database and these Redis keys to itself: every row in it came from
  // this stream. (This client reconnects on its own schedule after a Redis restart.)
  await until('the checks client back on Redis', async () => (await redis.ping()) === 'PONG', 10_000)
  const info = (await redis.call('XINFO', 'STREAM', `${prefix}occ:changes`)) as unknown[]
  const entriesAdded = Number(info[info.indexOf('entries-added') + 1])
  const rowsInAll = await db.collection('space_history').countDocuments()
  const outcome = { broken, duplicated, missing, rows: rowsInAll }
  const expected = { broken: 0, duplicated: 0, missing: 0, rows: entriesAdded }
  if (JSON.stringify(outcome) !== JSON.stringify(expected)) {
    const explanation = await explainChains(platform, checks, fleet, rows, wrongChains)
    log(explanation)
    expect(outcome, explanation).toEqual(expected)
  }
  if (everyReading) expect(rows).toHaveLength(fleet.devices.length * PER_DEVICE)
  return { rows: rowsInAll, changes: entriesAdded }
}

type Checks = { redis: RedisClient; prefix: string; db: Database }

/**
 * What a failed history check ends with, so that a failure explains itself: the outcome counters,
 * the rows per device and per kind, and for a few wrong devices their chain of rows in MongoDB
 * (`seq:from>to@stream id`, u/o/f for unknown/occupied/free) beside the change stream's entries
 * of their space (the stream keeps written entries for FEED_RETAIN_SECONDS) and their hot state.
 */
async function explainChains(
  platform: TestPlatform,
  checks: Checks,
  fleet: Fleet,
  rows: HistoryRow[],
  wrong: { device: Fleet['devices'][number]; chain: HistoryRow[] }[],
): Promise<string> {
  const { redis, db, prefix } = checks
  const short = (state: string) => state.slice(0, 1)
  const perDevice = new Map<number, number>()
  for (const d of fleet.devices) {
    const n = rows.filter((row) => row.space_id === d.space).length
    perDevice.set(n, (perDevice.get(n) ?? 0) + 1)
  }
  const kinds = new Map<string, number>()
  for (const row of await db
    .collection<{ kind: string }>('space_history')
    .find({ lot_id: fleet.lotId }, { projection: { kind: 1 } })
    .toArray())
    kinds.set(row.kind, (kinds.get(row.kind) ?? 0) + 1)
  // The stream's entries of the wrong devices' spaces, by space.
  const spaces = new Set(wrong.slice(0, 3).map((w) => w.device.space))
  const inStream = new Map<string, string[]>()
  const entries = await redis.xrange(`${prefix}occ:changes`, '-', '+')
  for (const [id, fields] of entries) {
    const e = changeOf(id, fields)
    if (!spaces.has(e.space)) continue
    const entry = `${e.kind === 'sensor' ? e.seq : e.kind}:${short(e.sensed_from)}>${short(e.sensed_to)}@${id}`
    inStream.set(e.space, [...(inStream.get(e.space) ?? []), entry])
  }
  const groups = ((await redis.xinfo('GROUPS', `${prefix}occ:changes`)) as unknown[][]).map((g) =>
    recordOf(g),
  )
  const lines = [
    `history check failed; outcomes ${JSON.stringify(await outcomes(platform))}`,
    `rows per device (rows: devices) ${JSON.stringify(Object.fromEntries(perDevice))}; rows of the lot by kind ${JSON.stringify(Object.fromEntries(kinds))} (read again now)`,
    `stream: ${entries.length} entries held; backlog now ${await platform.occupancy.persister.backlog()}; groups ${JSON.stringify(groups)}`,
  ]
  for (const { device, chain } of wrong.slice(0, 3)) {
    const hot = await redis.hgetall(`${prefix}occ:dev:${device.id}`)
    lines.push(
      `${device.id} (space ${device.space}, hot seq ${hot.seq} boot ${hot.boot}):`,
      `  rows   ${chain.map((row) => `${row.seq}:${short(row.sensed_from)}>${short(row.sensed_to)}@${row._id.slice(row._id.indexOf('/') + 1)}`).join(' ')}`,
      `  stream ${(inStream.get(device.space) ?? []).join(' ')}`,
    )
  }
  lines.push(`${wrong.length} of ${fleet.devices.length} devices have a wrong chain`)
  return lines.join('\n')
}

/** Clients of the platform's Redis and database, for checks from outside. */
async function openChecks(platform: TestPlatform): Promise<Checks> {
  return {
    // No key prefix: keys are spelled out in full, so that no command's key is prefixed twice.
    redis: await connectRedis(platform.urls.redis, () => {}),
    prefix: platformPrefix.get(platform) ?? '',
    db: await connectDatabase(platform.urls.mongodb),
  }
}

async function closeChecks(checks: Checks | undefined) {
  // quit() fails at once while the client is reconnecting (no offline queue).
  await checks?.redis.quit().catch(() => checks.redis.disconnect())
  await checks?.db.close()
}

const platformPrefix = new WeakMap<TestPlatform, string>()

async function startIngest(env: Record<string, string>, urls: Partial<TestPlatform['urls']>) {
  const prefix = env.REDIS_KEY_PREFIX ?? `t_${randomBytes(4).toString('hex')}:`
  const platform = await startTestPlatform(ingestEnv({ REDIS_KEY_PREFIX: prefix, ...env }), urls)
  platformPrefix.set(platform, prefix)
  await until('the ingest door to hold its session', async () => platform.occupancy.ingestConnected(), 10_000)
  return platform
}

// ---------------------------------------------------------------------------------------------

/**
 * Publishes the fleet's burst and strikes with `fault` in the middle of it: once the pipeline has
 * applied 1,000 of its readings, or the broker has acknowledged 5,000 of them, whichever comes
 * first. The burst goes on meanwhile, or with `holdDuringFault` pauses until `fault` returns.
 */
async function burstWithFault(
  platform: TestPlatform,
  brokerUrl: string,
  fleet: Fleet,
  fault: () => Promise<void>,
  options: PublisherOptions & { holdDuringFault?: boolean } = {},
) {
  const publisher = await connectPublisher(brokerUrl, options)
  const baseline = await applied(platform)
  type Struck = { ackedAt: number; appliedAt: number; ms: number }
  let faulted: Promise<Struck> | undefined
  const watch = async () => {
    const deadline = Date.now() + 30_000
    while (!faulted && Date.now() < deadline) {
      const appliedAt = (await applied(platform)) - baseline
      const ackedAt = publisher.report.acked
      if (appliedAt >= 1_000 || ackedAt >= 5_000) {
        const began = performance.now()
        faulted = fault().then(() => ({ ackedAt, appliedAt, ms: Math.round(performance.now() - began) }))
        return
      }
      await sleep(2)
    }
  }
  try {
    const [report] = await Promise.all([
      publisher.burst(fleet, { hold: () => (options.holdDuringFault ? faulted : undefined) }),
      watch(),
    ])
    const struck = await faulted
    if (!struck) throw new Error('the fault never ran')
    expect(struck.ackedAt).toBeLessThan(TOTAL)
    expect(struck.appliedAt).toBeLessThan(TOTAL)
    return { report, fault: struck }
  } finally {
    await publisher.close()
  }
}

/** Readings the pipeline accepted so far. */
const applied = async (platform: TestPlatform) =>
  await metricValue(platform, 'ingest_messages_total', { outcome: 'accepted' })

const outcomes = async (platform: TestPlatform) => ({
  accepted: await metricValue(platform, 'ingest_messages_total', { outcome: 'accepted' }),
  duplicate: await metricValue(platform, 'ingest_messages_total', { outcome: 'duplicate' }),
  stale: await metricValue(platform, 'ingest_messages_total', { outcome: 'stale' }),
  rejected: await metricValue(platform, 'ingest_messages_total', { outcome: 'rejected' }),
})

const elapsed = (since: number) => Math.round(performance.now() - since)

describe('the broker restarted mid-burst', () => {
  let services: ServiceSet<'mqtt'>
  let platform: TestPlatform
  let checks: Checks

  beforeAll(async () => {
    services = await startServices(scratchDir('ingest-broker'), ['mqtt'])
    platform = await startIngest({}, { mqtt: services.urls.mqtt })
    checks = await openChecks(platform)
  })
  afterAll(async () => {
    await closeChecks(checks)
    await platform?.stop()
    await services?.stop()
  })

  it('loses no message and records no change twice', { timeout: BURST_TEST_MS }, async () => {
    const fleet = await placeFleet(platform)
    const broker = services.services.mqtt.process
    let restarted: Promise<void> | undefined
    // A clean stop: Mosquitto saves its sessions, in-flight and queued messages, and loads them
    // at start. The sensors come back after the ingest door: Mosquitto 2.0.11 acknowledges and
    // then drops messages for a shared subscription restored from its persistence file while
    // the subscriber has not reconnected yet (measured: thousands of a burst lost when the
    // sensors win that race), a broker bug that no client can make up for.
    const { report, fault } = await burstWithFault(
      platform,
      services.urls.mqtt,
      fleet,
      async () => {
        restarted = (async () => {
          await broker.stop()
          await broker.start()
        })()
        await restarted
      },
      {
        reconnectWhen: async () => {
          await restarted
          await until(
            'the ingest door back on the broker',
            async () => platform.occupancy.ingestConnected(),
            10_000,
          )
        },
      },
    )
    expect(report.reconnects).toBeGreaterThan(0)
    expect(report.acked).toBe(TOTAL)

    const began = performance.now()
    await settle(platform, fleet)
    const outcome = await verifyOutcome(platform, checks, fleet, true)
    log(
      `broker restart: burst ${report.ms} ms, restart ${fault.ms} ms at ${fault.ackedAt} acks and ${fault.appliedAt} applied ` +
        `(${report.resent} resends, ${report.noSubscriber} without subscriber); settled in ${elapsed(began)} ms; ` +
        `${outcome.rows} rows = ${outcome.changes} changes; ${JSON.stringify(await outcomes(platform))}`,
    )
  })
})

describe('Redis restarted mid-burst', () => {
  let services: ServiceSet<'redis' | 'mqtt'>
  let platform: TestPlatform
  let checks: Checks

  beforeAll(async () => {
    services = await startServices(scratchDir('ingest-redis'), ['redis', 'mqtt'])
    platform = await startIngest({}, { redis: services.urls.redis, mqtt: services.urls.mqtt })
    checks = await openChecks(platform)
  })
  afterAll(async () => {
    await closeChecks(checks)
    await platform?.stop()
    await services?.stop()
  })

  it('loses no message and records no change twice (a clean stop)', { timeout: BURST_TEST_MS }, async () => {
    const fleet = await placeFleet(platform)
    const redis = services.services.redis.process
    // SIGTERM: Redis writes its append-only file out before it exits.
    const { report, fault } = await burstWithFault(platform, services.urls.mqtt, fleet, async () => {
      await redis.stop()
      await sleep(500)
      await redis.start()
    })
    expect(report.acked).toBe(TOTAL)

    const settled = await settle(platform, fleet)
    const outcome = await verifyOutcome(platform, checks, fleet, true)
    log(
      `redis restart: burst ${report.ms} ms, restart ${fault.ms} ms at ${fault.ackedAt} acks and ${fault.appliedAt} applied; ` +
        `${settled}; ${outcome.rows} rows = ${outcome.changes} changes; ` +
        JSON.stringify(await outcomes(platform)),
    )
  })

  // With `appendfsync always` Redis writes and syncs each reply's commands to the append-only
  // file before the reply goes out, so an acknowledged step survives the kill. (With `everysec`
  // a kill during a slow fsync, when Redis postpones its writes, lost steps once under load.)
  it('loses no message and records no change twice (killed with SIGKILL)', {
    timeout: BURST_TEST_MS,
  }, async () => {
    const fleet = await placeFleet(platform)
    const redis = services.services.redis.process
    const { report, fault } = await burstWithFault(platform, services.urls.mqtt, fleet, async () => {
      await redis.kill()
      await sleep(500)
      await redis.start()
    })
    expect(report.acked).toBe(TOTAL)

    const settled = await settle(platform, fleet)
    const outcome = await verifyOutcome(platform, checks, fleet, true)
    log(
      `redis SIGKILL: burst ${report.ms} ms, restart ${fault.ms} ms at ${fault.ackedAt} acks; ` +
        `${settled}; ${outcome.rows} rows = ${outcome.changes} changes; ` +
        JSON.stringify(await outcomes(platform)),
    )
  })

  // `settle` waits for the persister's backlog to reach 0. A restarted Redis (7.0) rebuilds the
  // consumer group from its append-only file without the group's read counter, and answers its
  // lag as null until the group has read up to the stream's end: the backlog took that for 0 and
  // said "caught up" while the persister was still catching up, so that the history check read
  // the rows before the last ones were written (a CI failure under load: every chain short of
  // its last readings, yet as many rows as changes once counted a moment later).
  it('counts unread changes as backlog when a restarted Redis cannot tell the lag', async () => {
    const prefix = `t_${randomBytes(4).toString('hex')}:`
    const client = await connectRedis(services.urls.redis, () => {}, prefix)
    try {
      const persister = createPersister({
        redis: client,
        state: { trim: async () => {} },
        repo: { persist: async () => {} } as unknown as OccupancyRepository,
        metrics: createMetrics(),
        logger: createLogger('silent'),
        settings: { consumer: 'c', batch: 100, blockMs: 100, claimIdleMs: 30_000, retainMs: 60_000 },
      })
      const stream = 'occ:changes'
      await client.xgroup('CREATE', stream, 'persister', '0', 'MKSTREAM')
      for (let i = 0; i < 5; i++) await client.xadd(stream, '*', 'c', String(i))
      const read = (await client.xreadgroup('GROUP', 'persister', 'c', 'COUNT', 2, 'STREAMS', stream, '>')) as
        | [string, [string, string[]][]][]
        | null
      await client.xack(stream, 'persister', ...(read?.[0]?.[1] ?? []).map(([id]) => id))
      expect(await persister.backlog()).toBe(3)

      await services.services.redis.process.stop()
      await services.services.redis.process.start()
      await until('the client back on Redis', async () => (await client.ping()) === 'PONG', 10_000)
      const group = recordOf(((await client.xinfo('GROUPS', stream)) as unknown[][])[0] ?? [])
      expect(group.lag, 'this Redis keeps the lag across a restart: the case is not covered').toBeNull()
      expect(await persister.backlog()).toBe(3)
    } finally {
      client.disconnect()
    }
  })

  // A platform stopped while Redis is away must still stop. ioredis keeps the commands of a
  // client told to disconnect while it waits to reconnect, unsettled for good: the persister's
  // stop() waited for its blocked read and hung (seen as a 60 s afterAll timeout right after the
  // restart above, before the reader was back).
  it('stops its persister while Redis is away', async () => {
    const client = await connectRedis(services.urls.redis, () => {}, `t_${randomBytes(4).toString('hex')}:`)
    const persister = createPersister({
      redis: client,
      state: { trim: async () => {} },
      repo: { persist: async () => {} } as unknown as OccupancyRepository,
      metrics: createMetrics(),
      logger: createLogger('silent'),
      settings: { consumer: 'c', batch: 100, blockMs: 100, claimIdleMs: 30_000, retainMs: 60_000 },
    })
    await persister.start()
    await sleep(300) // blocking reads, one after the other
    const redis = services.services.redis.process
    try {
      await redis.stop()
      await sleep(20) // the reader has seen the close and waits to reconnect (100 ms)
      const stopped = await Promise.race([
        persister.stop().then(() => 'stopped'),
        sleep(5_000).then(() => 'still stopping after 5 s'),
      ])
      expect(stopped).toBe('stopped')
    } finally {
      await redis.start()
      client.disconnect()
    }
  })
})

describe('the database stopped for a few seconds during a burst', () => {
  let services: ServiceSet<'mongodb' | 'mqtt'>
  let platform: TestPlatform
  let checks: Checks

  beforeAll(async () => {
    services = await startServices(scratchDir('ingest-database'), ['mongodb', 'mqtt'])
    platform = await startIngest({}, { mongodb: services.urls.mongodb, mqtt: services.urls.mqtt })
    checks = await openChecks(platform)
  })
  afterAll(async () => {
    await closeChecks(checks)
    await platform?.stop()
    await services?.stop()
  })

  it('keeps serving availability from Redis and says not ready, then catches up without a loss', {
    timeout: BURST_TEST_MS,
  }, async () => {
    const fleet = await placeFleet(platform)
    const database = services.services.mongodb.process
    const ids = fleet.devices.map((d) => d.id)
    const final = occupiedAt(LAST_SEQ) ? 'occupied' : 'free'
    type Outage = { began: number; ready: unknown; availability: unknown; backlog: number }
    let outage: Promise<Outage> | undefined
    // The burst pauses while the database stops, so that most of it arrives with the database
    // down; the database stays down until the whole burst is in the hot state.
    const { report, fault } = await burstWithFault(
      platform,
      services.urls.mqtt,
      fleet,
      async () => {
        await database.stop()
        const began = performance.now()
        outage = (async () => {
          try {
            await until(
              'the burst to reach the hot state',
              async () => (await platform.occupancy.index.deviceHealth(ids)).every((h) => h.seq === LAST_SEQ),
              30_000,
            )
            let ready: unknown
            await until(
              '/ready to say the database is down',
              async () => {
                const res = await platform.request('/ready')
                ready = { status: res.status, ...(await json(res)) }
                return res.status === 503
              },
              10_000,
            )
            const availability = await platform.request(`/api/v1/zones/${fleet.zoneId}/availability`)
            return {
              began,
              ready,
              availability: { status: availability.status, ...(await json(availability)) },
              backlog: await platform.occupancy.persister.backlog(),
            }
          } finally {
            await database.start()
          }
        })()
        outage.catch(() => {}) // awaited below
      },
      { holdDuringFault: true },
    )
    expect(report.acked).toBe(TOTAL)
    if (!outage) throw new Error('the database was never stopped')
    const down = await outage
    const downMs = elapsed(down.began)
    expect(down.ready).toMatchObject({ status: 503, checks: { database: { status: 'down' } } })
    expect(down.availability).toMatchObject({
      status: 200,
      total: DEVICES,
      available: final === 'free' ? DEVICES : 0,
      occupied: final === 'occupied' ? DEVICES : 0,
    })
    expect(down.backlog).toBeGreaterThan(0)

    const began = performance.now()
    await settle(platform, fleet)
    await until(
      '/ready to answer 200 again',
      async () => (await platform.request('/ready')).status === 200,
      20_000,
    )
    const outcome = await verifyOutcome(platform, checks, fleet, true)
    log(
      `database outage: burst ${report.ms} ms, down ${downMs} ms from ${fault.ackedAt} acks and ${fault.appliedAt} applied ` +
        `with ${down.backlog} changes waiting; caught up in ${elapsed(began)} ms; ` +
        `${outcome.rows} rows = ${outcome.changes} changes`,
    )
  })
})

describe('two ingest instances on one shared subscription', () => {
  let services: ServiceSet<'mqtt'>
  let platforms: TestPlatform[] = []
  let checks: Checks

  beforeAll(async () => {
    services = await startServices(scratchDir('ingest-shared'), ['mqtt'])
    // One deployment: the same Redis keys, database and share group; two ingest sessions.
    const shared = {
      REDIS_KEY_PREFIX: `t_${randomBytes(4).toString('hex')}:`,
      INGEST_SHARE_GROUP: `t_${randomBytes(4).toString('hex')}`,
    }
    const urls = { mqtt: services.urls.mqtt, mongodb: isolatedDatabase(inject('services').mongodb) }
    for (const name of ['a', 'b'])
      platforms.push(
        await startIngest(
          { ...shared, INGEST_CLIENT_ID: `t_${name}_${randomBytes(4).toString('hex')}` },
          urls,
        ),
      )
    checks = await openChecks(platforms[0] as TestPlatform)
  })
  afterAll(async () => {
    await closeChecks(checks)
    for (const platform of platforms) await platform.stop()
    platforms = []
    await services?.stop()
  })

  it('reaches the same final state as one, each taking a share', { timeout: BURST_TEST_MS }, async () => {
    const [a, b] = platforms as [TestPlatform, TestPlatform]
    const fleet = await placeFleet(a)
    const publisher = await connectPublisher(services.urls.mqtt)
    const report = await publisher.burst(fleet).finally(() => publisher.close())
    expect(report.acked).toBe(TOTAL)

    const began = performance.now()
    await settle(a, fleet)
    // Two instances apply batches side by side: a reading that reaches Redis after a newer one
    // of its device is stale and rightly dropped, so not every reading need be a change here.
    const outcome = await verifyOutcome(a, checks, fleet, false)
    const shares = [await outcomes(a), await outcomes(b)]
    const [receivedA, receivedB] = shares.map((o) => o.accepted + o.duplicate + o.stale) as [number, number]
    expect(receivedA).toBeGreaterThan(TOTAL * 0.1)
    expect(receivedB).toBeGreaterThan(TOTAL * 0.1)
    expect(receivedA + receivedB).toBeGreaterThanOrEqual(TOTAL)
    log(
      `two instances: burst ${report.ms} ms, settled in ${elapsed(began)} ms; ` +
        `${outcome.rows} rows = ${outcome.changes} changes; shares ${JSON.stringify(shares)}`,
    )
  })
})

describe('1,000 malformed messages', () => {
  let services: ServiceSet<'mqtt'>
  let platform: TestPlatform
  let checks: Checks

  beforeAll(async () => {
    services = await startServices(scratchDir('ingest-malformed'), ['mqtt'])
    platform = await startIngest(testAdmin, { mqtt: services.urls.mqtt })
    checks = await openChecks(platform)
  })
  afterAll(async () => {
    await closeChecks(checks)
    await platform?.stop()
    await services?.stop()
  })

  // Each bad message goes out under a device id of its own that carries its index, so that its
  // dead letter can be matched to it by topic; the kind fixes the reason it must be given.
  const kinds = [
    { kind: 'garbage', reason: /^payload: not UTF-8 JSON$/ },
    { kind: 'shape', reason: /^(message|device_id|boot_id|seq|measured_at|occupied): / },
    { kind: 'mismatch', reason: /^device_id \S+ does not match the topic's device \S+$/ },
    { kind: 'future', reason: /^measured_at: more than 5 minutes in the future$/ },
    { kind: 'unknown', reason: /^unknown device$/ },
  ] as const
  const shapes: unknown[] = [
    [],
    42,
    'occupied',
    null,
    {},
    { device_id: 7 },
    { device_id: 'x', boot_id: 'b', seq: -1, measured_at: 0, occupied: true },
    { device_id: 'x', boot_id: 'b', seq: 1.5, measured_at: 0, occupied: true },
    { device_id: 'x', boot_id: 'b', seq: 1, measured_at: 'yesterday', occupied: true },
    { device_id: 'x', boot_id: 'b', seq: 1, measured_at: 0, occupied: 'yes' },
  ]

  const badMessage = (i: number, tag: string) => {
    const device = `bad${String(i).padStart(4, '0')}-${tag}`
    const kind = kinds[i % kinds.length]?.kind
    const good = { device_id: device, boot_id: 'b1', seq: i, measured_at: Date.now(), occupied: true }
    let payload: Buffer
    switch (kind) {
      case 'garbage':
        payload = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00]), randomBytes(20 + (i % 40))])
        break
      case 'shape': {
        const shape = shapes[Math.floor(i / kinds.length) % shapes.length]
        // A shape that names a device names the topic's, so that its shape is all that is wrong.
        const named = typeof (shape as { device_id?: unknown } | null)?.device_id === 'string'
        payload = Buffer.from(JSON.stringify(named ? { ...(shape as object), device_id: device } : shape))
        break
      }
      case 'mismatch':
        payload = Buffer.from(JSON.stringify({ ...good, device_id: `other-${i}` }))
        break
      case 'future':
        payload = Buffer.from(JSON.stringify({ ...good, measured_at: Date.now() + 3_600_000 }))
        break
      default:
        payload = Buffer.from(JSON.stringify(good)) // well formed, but no such device is bound
    }
    return { topic: sensorTopics.state(device), payload }
  }

  it('dead-letters every one with its reason and goes on ingesting', { timeout: 60_000 }, async () => {
    const tag = randomBytes(3).toString('hex')
    const publisher = await connectPublisher(services.urls.mqtt)
    const began = performance.now()
    try {
      for (let from = 0; from < 1_000; from += 100)
        await Promise.all(
          Array.from({ length: 100 }, (_, k) => {
            const { topic, payload } = badMessage(from + k, tag)
            return publisher.deliver(topic, payload)
          }),
        )
    } finally {
      await publisher.close()
    }
    expect(publisher.report.acked).toBe(1_000)

    const stream = `${checks.prefix}occ:deadletters`
    await until('1,000 dead letters', async () => (await checks.redis.xlen(stream)) >= 1_000, 20_000)
    const letters = await checks.redis.xrange(stream, '-', '+')
    const byIndex = new Map<number, string[]>()
    for (const [, fields] of letters) {
      const f = Object.fromEntries(fields.flatMap((v, i) => (i % 2 === 0 ? [[v, fields[i + 1] ?? '']] : [])))
      const index = Number(/\/bad(\d{4})-/.exec(f.topic ?? '')?.[1] ?? -1)
      byIndex.set(index, [...(byIndex.get(index) ?? []), f.reason ?? ''])
    }
    expect(letters).toHaveLength(1_000)
    const wrong: string[] = []
    for (let i = 0; i < 1_000; i++) {
      const reasons = byIndex.get(i) ?? []
      const expected = kinds[i % kinds.length]
      if (reasons.length !== 1 || !expected?.reason.test(reasons[0] ?? ''))
        wrong.push(`${i} (${expected?.kind}): ${JSON.stringify(reasons)}`)
    }
    expect(wrong).toEqual([])
    expect((await outcomes(platform)).rejected).toBe(1_000)

    // Operators read them through the API, newest first, with their reasons.
    const operator = await createAccount(platform, await signInAdmin(platform), 'operator')
    const res = await platform.request('/api/v1/ingest/dead-letters?limit=500', {
      headers: bearer(operator.token),
    })
    expect(res.status).toBe(200)
    const page = await json(res)
    const newest = letters.slice(-500).reverse()
    expect(page.data.map((letter: { id: string; reason: string }) => [letter.id, letter.reason])).toEqual(
      newest.map(([id, fields]) => [id, fields[fields.indexOf('reason') + 1]]),
    )

    // And the pipeline still takes a good message.
    const fleet = await placeFleet(platform, 1)
    const device = fleet.devices[0] as { id: string; space: string }
    const good = await connectPublisher(services.urls.mqtt)
    await good
      .deliver(sensorTopics.state(device.id), reading(fleet, device.id, 0))
      .finally(() => good.close())
    await until(
      'the good message to reach the hot state',
      async () => (await platform.occupancy.state.space(device.space))?.sensed === 'occupied',
      10_000,
    )
    log(`malformed: 1,000 published and dead-lettered in ${Math.round(performance.now() - began)} ms`)
  })
})
