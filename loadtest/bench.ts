// The benchmark command (npm run bench): every figure of the occupancy pipeline's performance goals,
// each measured side by side with its baseline in one run on this machine, printed as a table and
// written to .bench/results.json. Absolute numbers drift 15-30 % between runs on small machines;
// the ratios are what to compare.
//
//   npm run bench [-- --messages 60000 --devices 500 --quick]

import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { toolPaths } from '../src/embedded/local-services.ts'
import { freePort } from '../src/embedded/service-process.ts'
import { sensorTask } from '../src/modules/occupancy/ingest.pipeline.ts'
import { occupancyModels } from '../src/modules/occupancy/occupancy.model.ts'
import { createOccupancyRepository } from '../src/modules/occupancy/occupancy.repository.ts'
import { createOccupancyState } from '../src/modules/occupancy/occupancy.state.ts'
import { createPersister, historyId } from '../src/modules/occupancy/persister.ts'
import { normaliseReading, packRaw } from '../src/modules/occupancy/readings.ts'
import { createLogger } from '../src/shared/logger.ts'
import { createMetrics } from '../src/shared/metrics.ts'
import { connectDatabase, initModels } from '../src/shared/mongo.ts'
import { startSubscriber } from '../src/shared/mqtt-subscriber.ts'
import { connectRedis } from '../src/shared/redis.ts'
import { createWorkerPool } from '../src/shared/worker-pool.ts'
import { startServices } from '../test/harness/services.ts'
import { publishAll as publishEach, sensorBursts } from './sensor-bursts.ts'

const { values: opts } = parseArgs({
  options: {
    messages: { type: 'string', default: '60000' },
    devices: { type: 'string', default: '500' },
    'change-every': { type: 'string', default: '10' },
    quick: { type: 'boolean', default: false },
  },
})
const CHANGE_EVERY = Math.max(1, Number(opts['change-every']))
const N = Math.min(Number(opts.messages), 500_000)
const DEVICES = Math.min(Number(opts.devices), 5_000)
const quick = opts.quick
const root = new URL('../', import.meta.url).pathname
const benchDir = join(root, '.bench')
const PREFIX = 'bench:'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const log = (line: string) => console.log(`bench: ${line}`)

rmSync(benchDir, { recursive: true, force: true })
mkdirSync(benchDir, { recursive: true })
const services = await startServices(benchDir, ['mongodb', 'redis', 'mqtt'])
const children: ChildProcess[] = []
const cleanup = async () => {
  for (const child of children) child.kill('SIGKILL')
  await services.stop()
}
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)))

const results: Record<string, unknown> = {}
try {
  await run()
} finally {
  await cleanup()
}

async function run() {
  // First the two in-process figures, while nothing else runs.
  // Worker offload: CPU per message through the pool against inline on the main thread.
  results.offload = await offload()
  log(`offload measured`)
  // Persistence: the persister against the driver's insertMany of the same rows.
  const persistenceRatio = await persistence()
  log(`persistence measured`)

  const lotId = '00000000-0000-7000-8000-00000000b001'
  const redis = await connectRedis(services.urls.redis, () => {}, PREFIX)
  const state = createOccupancyState(redis)
  const devices = Array.from({ length: DEVICES }, (_, i) => `bench-${String(i).padStart(5, '0')}`)
  const spaces = devices.map((_, i) => ({
    spaceId: `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`,
    lotId,
    levelId: `00000000-0000-7000-8001-00000000000${i % 2}`,
    zoneId: `00000000-0000-7000-8002-0000000000${String(i % 10).padStart(2, '0')}`,
    number: `B-${String(i).padStart(4, '0')}`,
    type: 'STANDARD' as const,
    overlay: null,
  }))
  await state.index.upsertSpaces(spaces)
  for (const [i, device] of devices.entries())
    await state.index.bindDevice(device, spaces[i]?.spaceId ?? null)
  log(`${DEVICES} spaces and devices placed in the hot state; ${N} messages per phase`)

  const publisher = await mqtt.connectAsync(services.urls.mqtt, {
    protocolVersion: 5,
    clientId: 'bench-publisher',
  })
  // Nagle off, as sensors and gateways should: with it on, a publish waits up to 40 ms.
  ;(publisher.stream as unknown as import('node:net').Socket).setNoDelay(true)
  const burst = sensorBursts(devices, 'bench')
  const publishAll = (messages: { topic: string; payload: string }[]) =>
    publishEach(publisher, messages, 2_000)

  // 1. Raw subscriber: the same MQTT client the ingest door uses, acknowledging at once.
  const rawSession = {
    url: services.urls.mqtt,
    clientId: 'bench-raw',
    topic: '$share/bench-raw/parking/sensors/+/+',
    receiveMaximum: 20_000,
    sessionExpirySeconds: 600,
  }
  const raw = await drainWith(rawSession, async () => await publishAll(burst(N)))
  log(`raw subscriber: ${fmt(raw.rate)} msg/s`)

  // 2. The full pipeline: its session exists but is away while the burst is queued, then it drains.
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const platformEnv = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: join(benchDir, 'platform'),
    MONGODB_URI: `${services.urls.mongodb.replace(/\/[^/]*$/, '')}/bench`,
    REDIS_URL: services.urls.redis,
    MQTT_URL: services.urls.mqtt,
    REDIS_KEY_PREFIX: PREFIX,
    INGEST_CLIENT_ID: 'bench-ingest',
    OCCUPANCY_DWELL_MS: '0',
  }
  let platform = await startPlatformProcess(platformEnv, base)
  const drain = async (changeEvery: number) => {
    await stopProcess(platform)
    const messages = burst(N, changeEvery)
    await publishAll(messages)
    const last = messages.at(-1) as { device: string; seq: number }
    platform = await startPlatformProcess(platformEnv, base)
    await scrape(base) // starts the event-loop delay window afresh
    // Batches apply in order, so the last message applied means all of them were.
    const began = await waitFor(
      async () =>
        Number(await redis.hget(`occ:dev:${devices[0]}`, 'seq')) > last.seq - Math.ceil(N / DEVICES),
      60_000,
      1,
    )
    await waitFor(
      async () => Number(await redis.hget(`occ:dev:${last.device}`, 'seq')) >= last.seq,
      120_000,
      2,
    )
    const rate = N / ((performance.now() - began) / 1000)
    const metrics = await scrape(base)
    const lost = N - metricValue(metrics, 'ingest_messages_total{outcome="accepted"}')
    const loopP99Ms = metricValue(metrics, 'nodejs_eventloop_lag_p99_seconds') * 1000
    log(
      `pipeline, a change every ${changeEvery} readings: ${fmt(rate)} msg/s, ${lost} lost, event-loop p99 ${loopP99Ms.toFixed(1)} ms`,
    )
    return { rate, lost, loopP99Ms }
  }
  const mixed = await drain(CHANGE_EVERY)
  const worst = await drain(1)
  results.ingest = {
    raw: raw.rate,
    pipeline: mixed.rate,
    ratio: mixed.rate / raw.rate,
    lost: mixed.lost,
    eventLoopP99Ms: mixed.loopP99Ms,
    worstCase: { ...worst, ratio: worst.rate / raw.rate },
  }
  const pipeRate = mixed.rate

  // 3. Event -> visible (the lot's live feed) at half the pipeline's rate, paced; and at a light
  // 1,000 msg/s for comparison.
  const halfRate = Math.max(100, Math.floor(pipeRate / 2))
  const seconds = quick ? 3 : 10
  const mixedBurst = (count: number) => burst(count, CHANGE_EVERY)
  // The drains left changes for the persister: let it catch up first.
  await waitFor(async () => (await persisterBacklog(redis)) === 0, 120_000, 100)
  const light = await latencyAt(base, lotId, 1_000, seconds, mixedBurst, publisher)
  log(`event -> feed at 1,000 msg/s: p50 ${light.p50.toFixed(2)} ms, p99 ${light.p99.toFixed(2)} ms`)
  const before = await scrape(base) // the steady window starts here
  const latencies = await latencyAt(base, lotId, halfRate, seconds, mixedBurst, publisher)
  await waitFor(async () => (await persisterBacklog(redis)) === 0, 120_000, 100)
  const steady = await scrape(base)
  const lagP99 = histogramP99(steady, 'persister_lag_seconds', before)
  const memory = {
    rssMiB: metricValue(steady, 'process_resident_memory_bytes') / 2 ** 20,
    heapUsedMiB: metricValue(steady, 'nodejs_heap_size_used_bytes') / 2 ** 20,
  }
  results.memory = memory
  log(
    `platform memory after the ingest phases: RSS ${memory.rssMiB.toFixed(0)} MiB, heap used ${memory.heapUsedMiB.toFixed(0)} MiB`,
  )
  const loopP99Steady = metricValue(steady, 'nodejs_eventloop_lag_p99_seconds') * 1000
  results.latency = {
    rate: halfRate,
    ...latencies,
    persisterLagP99s: lagP99,
    eventLoopP99Ms: loopP99Steady,
    light,
  }
  log(
    `event -> feed at ${fmt(halfRate)} msg/s: p50 ${latencies.p50.toFixed(2)} ms, p99 ${latencies.p99.toFixed(2)} ms`,
  )

  // 4. Availability reads under k6: the platform against a bare node:http server, same script,
  // once the persister has caught up (reads alone, as the target says).
  await waitFor(async () => (await persisterBacklog(redis)) === 0, 120_000, 100)
  const bare = spawn(process.execPath, [join(root, 'loadtest/bare-server.ts')], {
    env: { ...process.env, PORT: String(await freePort()) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(bare)
  const bareUrl = await new Promise<string>((resolve) =>
    bare.stdout?.once('data', (d) => resolve(String(d).trim())),
  )
  const zones = [...new Set(spaces.map((s) => s.zoneId))]
  const paths = [
    `/api/v1/lots/${lotId}/availability`,
    ...zones.slice(0, 3).map((z) => `/api/v1/zones/${z}/availability`),
  ]
  const { platform: platformMax, bare: bareMax } = await maxReadRates(
    { platform: base, bare: bareUrl },
    paths,
  )
  results.availability = { platform: platformMax, bare: bareMax, ratio: platformMax.rate / bareMax.rate }
  log(`availability: platform ${fmt(platformMax.rate)}/s, bare ${fmt(bareMax.rate)}/s`)
  await stopProcess(platform)
  bare.kill()

  results.persistence = { ...persistenceRatio, lagP99s: lagP99 }

  await publisher.endAsync()
  redis.disconnect()
  report()
}

async function drainWith(
  session: {
    url: string
    clientId: string
    topic: string
    receiveMaximum: number
    sessionExpirySeconds: number
  },
  fill: () => Promise<void>,
): Promise<{ rate: number }> {
  // Create the session, leave, queue the burst, come back and time the drain.
  const first = startSubscriber({ ...session, onMessage: (_t, _p, ack) => ack() })
  await waitFor(async () => first.connected, 10_000, 10)
  await sleep(200)
  await first.close()
  await fill()
  let count = 0
  let start = 0
  let done: () => void = () => {}
  const finished = new Promise<void>((resolve) => {
    done = resolve
  })
  const subscriber = startSubscriber({
    ...session,
    onMessage: (_t, _p, ack) => {
      if (count === 0) start = performance.now()
      ack()
      if (++count === N) done()
    },
  })
  await Promise.race([finished, sleep(120_000)])
  const seconds = (performance.now() - start) / 1000
  await subscriber.close()
  if (count < N) throw new Error(`raw subscriber got ${count} of ${N}`)
  return { rate: N / seconds }
}

async function latencyAt(
  base: string,
  lotId: string,
  rate: number,
  seconds: number,
  burst: (count: number) => { topic: string; payload: string; device: string; seq: number }[],
  publisher: mqtt.MqttClient,
) {
  const sent = new Map<string, number>()
  const latencies: number[] = []
  let events = 0
  const abort = new AbortController()
  const res = await fetch(`${base}/api/v1/lots/${lotId}/feed`, { signal: abort.signal })
  const reader = (async () => {
    const decoder = new TextDecoder()
    let text = ''
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const now = performance.now()
        text += decoder.decode(chunk, { stream: true })
        let end = text.indexOf('\n\n')
        while (end >= 0) {
          const block = text.slice(0, end)
          text = text.slice(end + 2)
          const data = block.split('\n').find((l) => l.startsWith('data:'))
          events++
          if (block.includes('event: change') && data) {
            const { change } = JSON.parse(data.slice(5)) as { change: { device: string; seq: string } }
            const at = sent.get(`${change.device}:${change.seq}`)
            if (at !== undefined) latencies.push(now - at)
          }
          end = text.indexOf('\n\n')
        }
      }
    } catch {
      // aborted
    }
  })()
  await sleep(300)
  const messages = burst(rate * seconds)
  const tick = 10
  const perTick = Math.max(1, Math.round((rate * tick) / 1000))
  const t0 = performance.now()
  for (let i = 0; i < messages.length; i += perTick) {
    const due = t0 + (i / perTick) * tick
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
    for (const m of messages.slice(i, i + perTick)) {
      sent.set(`${m.device}:${m.seq}`, performance.now())
      publisher.publish(m.topic, m.payload, { qos: 1 })
    }
  }
  await sleep(1_500)
  abort.abort()
  await reader
  if (process.env.BENCH_DEBUG) log(`latency run: ${events} feed events, status ${res.status}`)
  latencies.sort((a, b) => a - b)
  const pick = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN
  return { sent: messages.length, seen: latencies.length, p50: pick(0.5), p99: pick(0.99) }
}

/** The highest k6 constant-arrival rate whose run keeps p99 < 10 ms, no errors, no dropped iterations. */
/**
 * The highest k6 constant-arrival rate whose run keeps p99 < 10 ms, no failed request and (nearly)
 * no dropped iteration, for each target. The targets take turns at each rate, so that a busy
 * moment of the machine hits both alike, and a failed run is tried once more before it counts.
 */
async function maxReadRates<K extends string>(targets: Record<K, string>, paths: string[]) {
  const steps = quick
    ? [250, 500, 1_000, 2_000]
    : [250, 500, 750, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000]
  const best = Object.fromEntries(
    Object.keys(targets).map((k) => [k, { rate: 0, p99: Number.NaN }]),
  ) as Record<K, { rate: number; p99: number }>
  const running = new Set(Object.keys(targets) as K[])
  for (const rate of steps) {
    for (const name of [...running]) {
      let run = await k6Reads(targets[name], paths, rate)
      if (!run.passed) run = await k6Reads(targets[name], paths, rate)
      if (run.passed) best[name] = { rate, p99: run.p99 }
      else running.delete(name)
    }
    if (running.size === 0) break
  }
  return best
}

async function k6Reads(baseUrl: string, paths: string[], rate: number) {
  const summary = join(benchDir, `k6-${rate}-${Date.now()}.json`)
  const code = await new Promise<number>((resolve) => {
    const k6 = spawn(
      toolPaths.k6(),
      [
        'run',
        '--quiet',
        '--no-usage-report',
        '--summary-export',
        summary,
        join(root, 'loadtest/availability.js'),
      ],
      {
        env: {
          ...process.env,
          BASE_URL: baseUrl,
          PATHS: paths.join(','),
          RATE: String(rate),
          // k6 shares the two cores: a stall of the machine drops a few iterations at any rate.
          MAX_DROPPED_ITERATIONS: String(Math.ceil(rate * (quick ? 3 : 5) * 0.005)),
          DURATION: quick ? '3s' : '5s',
        },
        stdio: 'ignore',
      },
    )
    k6.on('exit', (c) => resolve(c ?? 1))
  })
  let p99 = Number.NaN
  try {
    const exported = JSON.parse(readFileSync(summary, 'utf8')) as {
      metrics: { http_req_duration: Record<string, number> }
    }
    p99 = exported.metrics.http_req_duration['p(99)'] ?? Number.NaN
  } catch {
    // no summary: k6 failed before writing it
  }
  return { passed: code === 0, p99 }
}

async function offload() {
  const batches = quick ? 40 : 200
  const size = 500
  const now = Date.now()
  const sample = Array.from({ length: batches }, (_, b) =>
    Array.from({ length: size }, (_, i) => {
      const device = `bench-${i}`
      const body = {
        device_id: device,
        boot_id: 'b',
        seq: b + 1,
        measured_at: now,
        occupied: i % 2 === 0,
        battery: 80,
        signal: -60,
      }
      return { topic: `parking/sensors/${device}/state`, payload: Buffer.from(JSON.stringify(body)) }
    }),
  )
  const measure = async (work: () => Promise<unknown>) => {
    const cpu = process.cpuUsage()
    await work()
    const used = process.cpuUsage(cpu)
    return (used.user + used.system) / (batches * size) // µs per message, every thread of the process
  }
  const pool = createWorkerPool(1)
  // Inline: the main thread decodes and normalises each message itself.
  const decoder = new TextDecoder()
  const inlineRun = async () => {
    for (const batch of sample)
      for (const m of batch) normaliseReading(JSON.parse(decoder.decode(m.payload)), now, { topic: m.topic })
  }
  // Through the pool, as the pipeline does it: pack, hand to a worker, get the arguments back,
  // batches handed over without waiting for the previous one.
  const poolRun = async () =>
    await Promise.all(sample.map((batch) => pool.run(packRaw(now, batch), { filename: sensorTask })))
  await inlineRun() // warm up both
  await poolRun()
  const inlineRounds: number[] = []
  const poolRounds: number[] = []
  for (let round = 0; round < 3; round++) {
    inlineRounds.push(await measure(inlineRun))
    poolRounds.push(await measure(poolRun))
  }
  await pool.destroy()
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1] ?? Number.NaN
  const inline = median(inlineRounds)
  const pooled = median(poolRounds)
  return { inlineMicros: inline, poolMicros: pooled, ratio: pooled / inline }
}

async function persistence() {
  const count = quick ? 5_000 : 20_000
  const uri = `${services.urls.mongodb.replace(/\/[^/]*$/, '')}/bench_persist`
  const db = await connectDatabase(uri)
  await initModels(db, [occupancyModels] as never)
  const prefix = 'benchp:'
  const redis = await connectRedis(services.urls.redis, () => {}, prefix)
  // Entries as the occupancy step writes them (one packed field; see changeOf).
  const entries = Array.from({ length: count }, (_, i) => [
    'c',
    [
      `space-${i % 500}`,
      'lot',
      'level',
      'zone',
      `N-${i % 500}`,
      'STANDARD',
      'sensor',
      'free',
      'occupied',
      'free',
      'occupied',
      '',
      String(Date.now()),
      `d-${i % 500}`,
      'b',
      String(i),
    ].join('|'),
  ])
  for (let i = 0; i < count; i += 1_000) {
    const pipeline = redis.pipeline()
    for (const fields of entries.slice(i, i + 1_000)) pipeline.xadd('occ:changes', '*', ...fields)
    await pipeline.exec()
  }
  const ids = (await redis.xrange('occ:changes', '-', '+')).map(([id]) => id)
  // Baseline: the same rows, the same batches, the native driver.
  const rows = ids.map((id, i) => ({
    _id: historyId(`space-${i % 500}`, id),
    space_id: `space-${i % 500}`,
    lot_id: 'lot',
    level_id: 'level',
    zone_id: 'zone',
    number: `N-${i % 500}`,
    type: 'STANDARD',
    kind: 'sensor',
    sensed_from: 'free',
    sensed_to: 'occupied',
    status_from: 'free',
    status_to: 'occupied',
    overlay: null,
    at: new Date(),
    device_id: `d-${i % 500}`,
    boot: 'b',
    seq: i,
    recorded_at: new Date(),
  }))
  // The same collection definition (indexes included) in a database of its own.
  const nativeDb = await connectDatabase(`${services.urls.mongodb.replace(/\/[^/]*$/, '')}/bench_native`)
  await initModels(nativeDb, [occupancyModels] as never)
  const native = nativeDb.getClient().db('bench_native').collection<{ _id: string }>('space_history')
  const t1 = performance.now()
  for (let i = 0; i < rows.length; i += 1_000)
    await native.insertMany(rows.slice(i, i + 1_000), { ordered: false })
  const nativeRate = count / ((performance.now() - t1) / 1000)
  const persister = createPersister({
    redis,
    state: createOccupancyState(redis),
    repo: createOccupancyRepository(db),
    metrics: createMetrics(),
    logger: createLogger('silent'),
    settings: { consumer: 'bench', batch: 1_000, blockMs: 200, claimIdleMs: 30_000, retainMs: 60_000 },
  })
  const t0 = performance.now()
  await persister.start()
  await waitFor(async () => (await persister.backlog()) === 0, 120_000, 5)
  const persisterRate = count / ((performance.now() - t0) / 1000)
  await persister.stop()
  redis.disconnect()
  await db.close()
  await nativeDb.close()
  return { documents: count, persister: persisterRate, native: nativeRate, ratio: persisterRate / nativeRate }
}

function report() {
  type R = Record<string, number>
  const ingest = results.ingest as R
  const worst = (results.ingest as { worstCase: R }).worstCase
  const lightLatency = (results.latency as { light: R }).light
  const latency = results.latency as R
  const reads = results.availability as { platform: R; bare: R; ratio: number }
  const off = results.offload as R
  const persist = results.persistence as R
  const rows: [string, string, string, boolean][] = [
    [
      `ingest QoS 1, 0 lost: pipeline / raw subscriber (1 in ${CHANGE_EVERY} a change)`,
      `${fmt(ingest.pipeline)} / ${fmt(ingest.raw)} msg/s = ${ingest.ratio?.toFixed(2)} (lost ${ingest.lost})`,
      '>= 0.8, 0 lost',
      (ingest.ratio ?? 0) >= 0.8 && ingest.lost === 0,
    ],
    [
      '  the same, every reading a change (worst case)',
      `${fmt(worst.rate)} / ${fmt(ingest.raw)} msg/s = ${worst.ratio?.toFixed(2)} (lost ${worst.lost})`,
      '(reported)',
      worst.lost === 0,
    ],
    [
      `event -> visible at ${fmt(latency.rate)} msg/s (half)`,
      `p50 ${latency.p50?.toFixed(2)} ms, p99 ${latency.p99?.toFixed(2)} ms (${latency.seen}/${latency.sent} seen)`,
      'p99 <= 10 ms',
      (latency.p99 ?? 99) <= 10,
    ],
    [
      '  the same at 1,000 msg/s',
      `p50 ${lightLatency.p50?.toFixed(2)} ms, p99 ${lightLatency.p99?.toFixed(2)} ms (${lightLatency.seen}/${lightLatency.sent} seen)`,
      '(reported)',
      true,
    ],
    [
      'availability reads, p99 < 10 ms: platform / bare node:http',
      `${fmt(reads.platform.rate)} / ${fmt(reads.bare.rate)} req/s = ${reads.ratio.toFixed(2)}`,
      '>= 0.85',
      reads.ratio >= 0.85,
    ],
    [
      'worker offload CPU per message: pool / inline',
      `${off.poolMicros?.toFixed(1)} / ${off.inlineMicros?.toFixed(1)} µs = ${off.ratio?.toFixed(2)}`,
      '<= 1.1',
      (off.ratio ?? 9) <= 1.1,
    ],
    [
      'main event-loop delay p99 under ingest (full burst; half rate)',
      `${ingest.eventLoopP99Ms?.toFixed(1)} ms; ${latency.eventLoopP99Ms?.toFixed(1)} ms`,
      '<= 5 ms',
      (ingest.eventLoopP99Ms ?? 99) <= 5,
    ],
    [
      'persistence docs/s: persister / native insertMany',
      `${fmt(persist.persister)} / ${fmt(persist.native)} = ${persist.ratio?.toFixed(2)}`,
      '>= 0.8',
      (persist.ratio ?? 0) >= 0.8,
    ],
    ['persistence lag p99 (half rate)', `<= ${persist.lagP99s} s`, '<= 1 s', (persist.lagP99s ?? 99) <= 1],
  ]
  const width = Math.max(...rows.map((r) => r[0].length))
  const valueWidth = Math.max(...rows.map((r) => r[1].length))
  console.log('')
  console.log(`${'figure'.padEnd(width)}  ${'measured'.padEnd(valueWidth)}  target          verdict`)
  for (const [name, value, target, ok] of rows)
    console.log(
      `${name.padEnd(width)}  ${value.padEnd(valueWidth)}  ${target.padEnd(14)}  ${ok ? 'met' : 'MISSED'}`,
    )
  writeFileSync(join(benchDir, 'results.json'), JSON.stringify({ machine: machine(), results }, null, 2))
  console.log(`\n${machine()}; results in .bench/results.json`)
}

function machine() {
  return `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`
}

async function startPlatformProcess(env: Record<string, string>, base: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(root, 'src/main.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  children.push(child)
  await waitFor(async () => (await fetch(`${base}/ready`).catch(() => undefined))?.status === 200, 60_000, 50)
  return child
}

async function stopProcess(child: ChildProcess) {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

async function persisterBacklog(redis: Awaited<ReturnType<typeof connectRedis>>): Promise<number> {
  const groups = (await redis.xinfo('GROUPS', 'occ:changes')) as unknown[][]
  const group = groups.find((g) => g[1] === 'persister') ?? []
  const field = (name: string) => Number(group[group.indexOf(name) + 1] ?? 0)
  return field('pending') + field('lag')
}

async function scrape(base: string): Promise<string> {
  return await (await fetch(`${base}/metrics`)).text()
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : 0
}

/** The upper bound of the bucket holding the 99th percentile, of what was observed since `since`. */
function histogramP99(text: string, name: string, since = ''): number {
  const buckets = (page: string) =>
    page
      .split('\n')
      .filter((l) => l.startsWith(`${name}_bucket{`))
      .map((l) => ({
        le: /le="\+Inf"/.test(l) ? Number.POSITIVE_INFINITY : Number(/le="([^"]+)"/.exec(l)?.[1]),
        count: Number(l.slice(l.lastIndexOf(' ') + 1)),
      }))
  const earlier = buckets(since)
  const window = buckets(text).map((b, i) => ({ le: b.le, count: b.count - (earlier[i]?.count ?? 0) }))
  const total = window.at(-1)?.count ?? 0
  return window.find((b) => b.count >= 0.99 * total)?.le ?? Number.NaN
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, everyMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return performance.now()
    if (Date.now() > deadline) throw new Error('timed out')
    await sleep(everyMs)
  }
}

function fmt(n: number | undefined): string {
  return Math.round(n ?? 0).toLocaleString('en-US')
}
