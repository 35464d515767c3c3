// What a `space.state_changed` webhook subscriber costs, side by side in one run on this machine:
// the same bounded burst of sensor changes through the whole platform (MQTT, pipeline, Redis,
// persister) without a subscription and with one to a loopback receiver, alternating, so that a
// busy moment of a shared machine hits both alike. Printed: the time until every change is
// persisted (the persister caught up) in both cases and their ratio; the delivery throughput of
// the instance to a receiver answering 204 at once (first event to last delivery, the schedule's
// peak depth); and the same to a receiver answering after --slow-ms, where WEBHOOK_CONCURRENCY is
// the bound. Everything on loopback; every wait is bounded. Absolute numbers drift 15-30 % between
// runs on small machines: compare the ratios.
//
//   npm run bench:webhooks [-- --changes 3000 --devices 300 --rounds 2 --slow-changes 400 --slow-ms 200]

import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, openSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { freePort } from '../src/embedded/service-process.ts'
import { createOccupancyState } from '../src/modules/occupancy/occupancy.state.ts'
import { connectDatabase } from '../src/shared/mongo.ts'
import { connectRedis } from '../src/shared/redis.ts'
import { startServices } from '../test/harness/services.ts'
import { publishAll as publishEach, sensorBursts } from './sensor-bursts.ts'

const { values: opts } = parseArgs({
  options: {
    changes: { type: 'string', default: '3000' },
    devices: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '2' },
    'slow-changes': { type: 'string', default: '200' },
    'delivery-window': { type: 'string', default: '45' },
    'slow-ms': { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
  },
})
const N = Math.min(Math.max(1, Number(opts.changes)), 50_000)
const DEVICES = Math.min(Math.max(1, Number(opts.devices)), 5_000)
const ROUNDS = Math.min(Math.max(1, Number(opts.rounds)), 5)
const SLOW_N = Math.min(Math.max(0, Number(opts['slow-changes'])), 5_000)
const SLOW_MS = Math.min(Math.max(0, Number(opts['slow-ms'])), 5_000)
const CONCURRENCY = Math.min(Math.max(1, Number(opts.concurrency)), 256)
/** How long a burst's deliveries are watched (from the burst's start) before the rest is dropped. */
const DELIVERY_WINDOW_MS = Math.min(Math.max(5, Number(opts['delivery-window'])), 170) * 1000
/** No phase waits longer than this for anything. */
const PHASE_LIMIT_MS = 180_000
const root = new URL('../', import.meta.url).pathname
const benchDir = join(root, '.bench', 'webhooks')
const PREFIX = 'benchwh:'
const admin = { email: 'bench-admin@example.com', password: 'loopback-receivers-only-7' }
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const log = (line: string) => console.log(`bench:webhooks: ${line}`)

rmSync(benchDir, { recursive: true, force: true })
mkdirSync(benchDir, { recursive: true })
const services = await startServices(benchDir, ['mongodb', 'redis', 'mqtt'])
const children: ChildProcess[] = []
const servers: Server[] = []
const cleanup = async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  for (const server of servers) server.closeAllConnections()
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  await services.stop()
}
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)))

try {
  await run()
} finally {
  await cleanup()
}

/** A loopback receiver that records when each distinct event arrived (2xx after `delayMs`). */
async function startReceiver(delayMs: number) {
  const arrivals = new Map<string, number>()
  let requests = 0
  let inFlight = 0
  let maxInFlight = 0
  const server = createServer((request, response) => {
    requests++
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const answer = () => {
        inFlight--
        const id = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string }).id
        if (!arrivals.has(id)) arrivals.set(id, performance.now())
        response.writeHead(204).end()
      }
      if (delayMs > 0) setTimeout(answer, delayMs)
      else answer()
    })
  })
  server.on('connection', (socket: Socket) => socket.setNoDelay(true))
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/hook`,
    arrivals,
    stats: () => ({ requests, maxInFlight }),
    reset() {
      arrivals.clear()
      requests = 0
      maxInFlight = 0
    },
  }
}

async function run() {
  const lotId = '00000000-0000-7000-8000-00000000c001'
  const redis = await connectRedis(services.urls.redis, () => {}, PREFIX)
  const state = createOccupancyState(redis)
  const devices = Array.from({ length: DEVICES }, (_, i) => `benchwh-${String(i).padStart(5, '0')}`)
  const spaces = devices.map((_, i) => ({
    spaceId: `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`,
    lotId,
    levelId: '00000000-0000-7000-8001-000000000000',
    zoneId: `00000000-0000-7000-8002-0000000000${String(i % 10).padStart(2, '0')}`,
    number: `W-${String(i).padStart(4, '0')}`,
    type: 'STANDARD' as const,
    overlay: null,
  }))
  await state.index.upsertSpaces(spaces)
  for (const [i, device] of devices.entries())
    await state.index.bindDevice(device, spaces[i]?.spaceId ?? null)

  const fast = await startReceiver(0)
  const slow = await startReceiver(SLOW_MS)
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const platform = await startPlatformProcess(
    {
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: join(benchDir, 'platform'),
      MONGODB_URI: `${services.urls.mongodb.replace(/\/[^/]*$/, '')}/benchwh`,
      REDIS_URL: services.urls.redis,
      MQTT_URL: services.urls.mqtt,
      REDIS_KEY_PREFIX: PREFIX,
      INGEST_CLIENT_ID: 'benchwh-ingest',
      OCCUPANCY_DWELL_MS: '0',
      ADMIN_EMAIL: admin.email,
      ADMIN_PASSWORD: admin.password,
      // Production settings, except that the receivers are on loopback over http.
      WEBHOOK_ALLOW_HTTP: 'true',
      WEBHOOK_ALLOW_PRIVATE_HOSTS: 'true',
      WEBHOOK_CONCURRENCY: String(CONCURRENCY),
    },
    base,
  )
  const login = await api(base, 'POST', '/api/v1/auth/login', undefined, admin)
  const token = (login as { access_token: string }).access_token
  // A fresh subscription for each burst, disabled (never enabled again) when its window ends, so
  // that no burst delivers what an earlier one left pending.
  let subscriptionId = ''
  const subscribe = async (url: string) => {
    const made = (await api(base, 'POST', '/api/v1/webhooks/subscriptions', token, {
      url,
      event_types: ['space.state_changed'],
      description: 'bench:webhooks',
    })) as { id: string }
    subscriptionId = made.id
  }
  const unsubscribe = async () =>
    await api(base, 'PATCH', `/api/v1/webhooks/subscriptions/${subscriptionId}`, token, { enabled: false })

  const publisher = await mqtt.connectAsync(services.urls.mqtt, {
    protocolVersion: 5,
    clientId: 'benchwh-publisher',
  })
  ;(publisher.stream as unknown as Socket).setNoDelay(true)

  const burst = sensorBursts(devices, 'benchwh')
  const publishAll = (messages: { topic: string; payload: string }[]) => publishEach(publisher, messages, 500)

  /**
   * Deliveries still scheduled when a window ended (their subscription is disabled by then) are
   * taken out of the schedule, so that the next burst starts from an empty queue. They stay
   * pending in MongoDB, as a disabled subscription's do.
   */
  const dropSchedule = async () => {
    await sleep(300) // the last claims' attempts finish (loopback) and remove themselves
    await redis.del('wh:schedule')
  }

  /**
   * One burst: publish, wait until the last reading is applied and the persister has caught up;
   * meanwhile sample the webhook schedule's depth. Times from the first publish.
   */
  const runBurst = async (count: number, receiver?: Awaited<ReturnType<typeof startReceiver>>) => {
    await dropSchedule()
    // Start from quiet: nothing left for the persister or the dispatcher from before.
    await waitFor(async () => (await persisterBacklog(redis)) === 0, PHASE_LIMIT_MS, 20)
    await waitFor(async () => (await redis.zcard('wh:schedule')) === 0, PHASE_LIMIT_MS, 20)
    receiver?.reset()
    const messages = burst(count)
    const last = messages.at(-1) as { device: string; seq: number }
    let depthPeak = 0
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        depthPeak = Math.max(depthPeak, await redis.zcard('wh:schedule'))
        await sleep(20)
      }
    })()
    const t0 = performance.now()
    await publishAll(messages)
    const published = performance.now() - t0
    await waitFor(
      async () => Number(await redis.hget(`occ:dev:${last.device}`, 'seq')) >= last.seq,
      PHASE_LIMIT_MS,
      2,
    )
    const applied = performance.now() - t0
    await waitFor(async () => (await persisterBacklog(redis)) === 0, PHASE_LIMIT_MS, 2)
    const persisted = performance.now() - t0
    let delivered = Number.NaN
    let firstDelivery = Number.NaN
    if (receiver) {
      const deadline = t0 + DELIVERY_WINDOW_MS
      while (receiver.arrivals.size < count && performance.now() < deadline) await sleep(5)
      const times = [...receiver.arrivals.values()]
      if (times.length === 0) throw new Error(`no delivery within ${DELIVERY_WINDOW_MS} ms`)
      firstDelivery = Math.min(...times) - t0
      delivered = Math.max(...times) - t0
    }
    sampling = false
    await sampler
    return {
      windowMs: performance.now() - t0,
      changes: count,
      publishedMs: published,
      appliedMs: applied,
      persistedMs: persisted,
      firstDeliveryMs: firstDelivery,
      lastDeliveryMs: delivered,
      deliveries: receiver?.arrivals.size ?? 0,
      requests: receiver?.stats().requests ?? 0,
      maxInFlight: receiver?.stats().maxInFlight ?? 0,
      depthPeak,
    }
  }

  // Warm-up: JIT, connections and the first write of every space's history, off the record.
  await runBurst(Math.min(N, DEVICES * 2))
  await subscribe(fast.url)
  await runBurst(Math.min(N, 50), fast)
  await unsubscribe()
  log(`warmed up; ${ROUNDS} rounds of ${N} changes over ${DEVICES} devices, without and with a subscriber`)

  type Burst = Awaited<ReturnType<typeof runBurst>>
  const without: Burst[] = []
  const withFast: Burst[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const a = await runBurst(N)
    without.push(a)
    log(`round ${round + 1}, no subscription: persisted in ${ms(a.persistedMs)}`)
    await subscribe(fast.url)
    const b = await runBurst(N, fast)
    withFast.push(b)
    log(
      `round ${round + 1}, one subscription: persisted in ${ms(b.persistedMs)}, last delivery at ${ms(b.lastDeliveryMs)}, ${b.deliveries} deliveries, schedule peak ${b.depthPeak}`,
    )
    await unsubscribe()
  }

  let slowRun: Burst | undefined
  if (SLOW_N > 0) {
    await subscribe(slow.url)
    slowRun = await runBurst(SLOW_N, slow)
    log(
      `slow receiver (${SLOW_MS} ms): ${slowRun.deliveries} deliveries, last at ${ms(slowRun.lastDeliveryMs)}, at most ${slowRun.maxInFlight} in flight`,
    )
    await unsubscribe()
  }
  const metrics = (await api(base, 'GET', '/metrics', undefined)) as string
  const failedAttempts = metrics
    .split('\n')
    .filter((l) => l.startsWith('webhook_attempts_total{') && !l.includes('"succeeded"'))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)

  const reads = await readShapes()
  await stopProcess(platform)
  await publisher.endAsync()
  redis.disconnect()
  report(without, withFast, slowRun, failedAttempts, reads)
}

/**
 * Where a delivery's time goes: the dispatcher reads a claimed batch's deliveries and events with
 * `_id: {$in: [...]}`. The same one-id read in that shape and as `findOne({_id})`, alternating,
 * on the collections as the run left them.
 */
async function readShapes() {
  const db = await connectDatabase(`${services.urls.mongodb.replace(/\/[^/]*$/, '')}/benchwh`)
  try {
    const client = db.getClient().db('benchwh')
    const out: Record<string, { documents: number; inMs: number; byIdMs: number }> = {}
    for (const name of ['webhook_deliveries', 'webhook_events']) {
      const collection = client.collection<{ _id: string }>(name)
      const documents = await collection.countDocuments()
      const ids = (
        await collection
          .find({}, { projection: { _id: 1 } })
          .limit(200)
          .toArray()
      ).map((d) => d._id)
      const inTimes: number[] = []
      const byIdTimes: number[] = []
      for (let i = 0; i < 10 && ids.length > 0; i++) {
        const id = ids[(i * 17) % ids.length] as string
        let t = performance.now()
        await collection.find({ _id: { $in: [id] } }).toArray()
        inTimes.push(performance.now() - t)
        t = performance.now()
        await collection.findOne({ _id: id })
        byIdTimes.push(performance.now() - t)
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN
      out[name] = { documents, inMs: median(inTimes), byIdMs: median(byIdTimes) }
    }
    return out
  } finally {
    await db.close()
  }
}

function report(
  without: { persistedMs: number; appliedMs: number }[],
  withFast: {
    persistedMs: number
    appliedMs: number
    firstDeliveryMs: number
    lastDeliveryMs: number
    deliveries: number
    depthPeak: number
    maxInFlight: number
  }[],
  slow:
    | {
        changes: number
        persistedMs: number
        firstDeliveryMs: number
        lastDeliveryMs: number
        deliveries: number
        depthPeak: number
        maxInFlight: number
      }
    | undefined,
  failedAttempts: number,
  reads: Record<string, { documents: number; inMs: number; byIdMs: number }>,
) {
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b)
    const mid = Math.floor(sorted.length / 2)
    return sorted.length % 2 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
  }
  const persistA = median(without.map((r) => r.persistedMs))
  const persistB = median(withFast.map((r) => r.persistedMs))
  const rate = (count: number, msValue: number) => fmt(count / (msValue / 1000))
  const span = (r: { firstDeliveryMs: number; lastDeliveryMs: number }) =>
    r.lastDeliveryMs - r.firstDeliveryMs
  const deliveryRates = withFast.map((r) => r.deliveries / (span(r) / 1000))
  const rows: [string, string][] = [
    [
      `changes persisted: no subscription / one (median of ${without.length})`,
      `${ms(persistA)} / ${ms(persistB)} = ${(persistB / persistA).toFixed(2)}× the time`,
    ],
    ['  each round: no subscription', without.map((r) => ms(r.persistedMs)).join(', ')],
    ['  each round: one subscription', withFast.map((r) => ms(r.persistedMs)).join(', ')],
    ['ingest+persist rate: no subscription / one', `${rate(N, persistA)} / ${rate(N, persistB)} changes/s`],
    ['deliveries/s, fast receiver (first to last delivery)', deliveryRates.map((r) => fmt(r)).join(', ')],
    [
      'first -> last delivery (burst start -> last delivery)',
      withFast.map((r) => `${ms(span(r))} (${ms(r.lastDeliveryMs)})`).join(', '),
    ],
    [
      'delivery rate / persist rate with a subscriber',
      `${(median(deliveryRates) / (N / (persistB / 1000))).toFixed(2)}`,
    ],
    [
      `delivered within the ${DELIVERY_WINDOW_MS / 1000} s window (of ${N})`,
      withFast.map((r) => String(r.deliveries)).join(', '),
    ],
    [`time to deliver all ${N} at that rate`, deliveryRates.map((r) => `${fmt(N / r)} s`).join(', ')],
    ['schedule depth peak (fast)', withFast.map((r) => String(r.depthPeak)).join(', ')],
    ['receiver requests in flight at most (fast)', withFast.map((r) => String(r.maxInFlight)).join(', ')],
  ]
  if (slow) {
    const slowRate = slow.deliveries / (span(slow) / 1000)
    rows.push(
      [
        `slow receiver (${SLOW_MS} ms), ${slow.changes} changes: deliveries/s`,
        `${fmt(slowRate)} (bound: ${CONCURRENCY} / ${SLOW_MS / 1000} s = ${fmt(CONCURRENCY / (SLOW_MS / 1000))}/s)`,
      ],
      ['  first -> last delivery; changes persisted at', `${ms(span(slow))}; ${ms(slow.persistedMs)}`],
      ['  in flight at most; schedule depth peak', `${slow.maxInFlight}; ${slow.depthPeak}`],
    )
  }
  rows.push(['failed attempts (all phases)', String(failedAttempts)])
  for (const [name, r] of Object.entries(reads))
    rows.push([
      `one-id read of ${name} (${r.documents} docs): $in / by _id`,
      `${r.inMs.toFixed(1)} / ${r.byIdMs.toFixed(1)} ms = ${(r.inMs / r.byIdMs).toFixed(0)}×`,
    ])
  const width = Math.max(...rows.map((r) => r[0].length))
  console.log('')
  for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`)
  console.log(
    `\n${N} changes over ${DEVICES} devices per burst, WEBHOOK_CONCURRENCY=${CONCURRENCY}; ${machine()}; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  )
}

function machine() {
  return `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`
}

async function api(base: string, method: string, path: string, token: string | undefined, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return res.headers.get('content-type')?.includes('json') ? (JSON.parse(text) as unknown) : text
}

async function startPlatformProcess(env: Record<string, string>, base: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(root, 'src/main.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', openSync(join(benchDir, 'platform.log'), 'w'), 'inherit'],
  })
  children.push(child)
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) log(`the platform exited with ${code}: see .bench/webhooks/platform.log`)
  })
  let last = 'no answer'
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`the platform exited with ${child.exitCode}`)
      const res = await fetch(`${base}/ready`).catch(() => undefined)
      if (res) last = `${res.status} ${await res.text()}`
      return res?.status === 200
    },
    60_000,
    50,
  ).catch(() => {
    throw new Error(`the platform did not get ready in 60 s: ${last}`)
  })
  return child
}

async function stopProcess(child: ChildProcess) {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await Promise.race([exited, sleep(15_000)])
}

async function persisterBacklog(redis: Awaited<ReturnType<typeof connectRedis>>): Promise<number> {
  const groups = (await redis.xinfo('GROUPS', 'occ:changes').catch(() => [])) as unknown[][]
  const group = groups.find((g) => g[1] === 'persister') ?? []
  const field = (name: string) => Number(group[group.indexOf(name) + 1] ?? 0)
  return field('pending') + field('lag')
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, everyMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return performance.now()
    if (Date.now() > deadline) throw new Error('timed out')
    await sleep(everyMs)
  }
}

function ms(value: number): string {
  return `${Math.round(value).toLocaleString('en-US')} ms`
}

function fmt(n: number | undefined): string {
  return Math.round(n ?? 0).toLocaleString('en-US')
}
