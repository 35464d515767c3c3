import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { toolPaths } from '../../src/embedded/local-services.ts'
import { testAdmin } from '../harness/accounts.ts'
import { startTestPlatform } from '../harness/platform.ts'
import { type ServiceSet, scratchDir, startServices } from '../harness/services.ts'

// The k6 scripts of loadtest/ run for a few seconds at a small rate with the project's k6 (built
// with its MQTT extension by loadtest/build-k6.sh) and pass their own thresholds: sensor readings
// published at QoS 1 by devices that exist only in the broker's dynamic security, and
// availability reads against a small HTTP server.

const root = new URL('../../', import.meta.url).pathname

type Metric = Record<string, number | Record<string, boolean>>
type K6Run = { code: number | null; output: string; metrics: Record<string, Metric> }

/** Runs a loadtest/ script with -e variables; its summary comes from --summary-export. */
async function runK6(script: string, vars: Record<string, string>, dir: string): Promise<K6Run> {
  const summaryFile = join(dir, `${script}.summary.json`)
  const args = [
    'run',
    '--quiet',
    '--no-color',
    '--no-usage-report',
    // k6's REST API would take localhost:6565, and a second run side by side would collide.
    '--address=',
    `--summary-export=${summaryFile}`,
    '--summary-trend-stats=avg,min,med,max,p(90),p(99)',
    ...Object.entries(vars).flatMap(([key, value]) => ['-e', `${key}=${value}`]),
    join(root, 'loadtest', script),
  ]
  const child = spawn(toolPaths.k6(), args, { cwd: dir, env: { ...process.env, K6_NO_USAGE_REPORT: 'true' } })
  let output = ''
  child.stdout.on('data', (chunk) => {
    output += chunk
  })
  child.stderr.on('data', (chunk) => {
    output += chunk
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
  clearTimeout(killer)
  writeFileSync(join(dir, `${script}.log`), output)
  let metrics: Record<string, Metric> = {}
  try {
    metrics = (JSON.parse(readFileSync(summaryFile, 'utf8')) as { metrics: Record<string, Metric> }).metrics
  } catch {
    // No summary: the exit code and the output below tell why.
  }
  return { code, output, metrics }
}

const count = (run: K6Run, metric: string) => Number(run.metrics[metric]?.count ?? 0)
const rate = (run: K6Run, metric: string) => run.metrics[metric]?.value

/** The script's thresholds by metric, each true when crossed (the summary export's convention). */
const thresholds = (run: K6Run) =>
  Object.fromEntries(
    Object.entries(run.metrics)
      .filter(([, metric]) => metric.thresholds)
      .map(([name, metric]) => [name, metric.thresholds]),
  )

describe('the k6 binary', () => {
  it('is where loadtest/build-k6.sh puts it, with k6/x/mqtt built in', async () => {
    // Throws "k6 with the MQTT extension is not built at ...: run ..." when it is missing.
    const path = toolPaths.k6()
    const run = promisify(execFile)
    const built = await run('bash', [join(root, 'loadtest/build-k6.sh')])
    expect(built.stdout.trim()).toBe(path)
    const version = await run(path, ['version'])
    expect(version.stdout).toMatch(/k6 v1\.8\.1/)
    expect(version.stdout).toMatch(/k6\/x\/mqtt/)
  })
})

describe('loadtest/ingest-mqtt.js', () => {
  let broker: ServiceSet<'mqtt'>
  let dir: string
  beforeAll(async () => {
    // A broker of its own: the shared one may carry another test's ingest door, which would
    // take these readings from devices it does not know.
    dir = scratchDir('k6-ingest')
    broker = await startServices(dir, ['mqtt'])
  })
  afterAll(async () => {
    await broker?.stop()
  })

  it('publishes readings at QoS 1 as devices created through dynamic security, within its thresholds', async () => {
    const admin = await mqtt.connectAsync(broker.urls.mqtt, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 3_000,
    })
    try {
      // More VUs than the rate needs: when the busy machine stalls k6, the overdue iterations start
      // together, and one without a free VU would count as dropped (a VU is a device's connection:
      // 4 dropped one in a loaded CI run, so 12).
      const devices = Array.from({ length: 12 }, (_, i) => i + 1).map((n) => ({
        device_id: `k6-smoke-${n}-${randomBytes(3).toString('hex')}`,
        username: '',
        password: randomBytes(12).toString('base64url'),
      }))
      for (const device of devices) {
        device.username = device.device_id
        await createDevice(admin, device.device_id, device.password)
      }
      const devicesFile = join(dir, 'devices.json')
      writeFileSync(devicesFile, JSON.stringify(devices))

      const received: { topic: string; body: Record<string, unknown> }[] = []
      admin.on('message', (topic, payload) => {
        if (topic.startsWith('parking/sensors/'))
          received.push({ topic, body: JSON.parse(payload.toString()) })
      })
      await admin.subscribeAsync('parking/sensors/+/state', { qos: 1 })

      const run = await runK6(
        'ingest-mqtt.js',
        {
          MQTT_URL: `mqtt://127.0.0.1:${new URL(broker.urls.mqtt).port}`,
          DEVICES: devicesFile,
          RATE: '40',
          DURATION: '3s',
          // A smoke run on a busy shared machine: the latency bound is loose, the others are not.
          PUBACK_P99_MS: '500',
        },
        dir,
      )
      expect(run.code, run.output).toBe(0)
      expect(thresholds(run)).toEqual({
        mqtt_puback_duration: { 'p(99)<500': false },
        mqtt_publish_failures: { 'rate<=0': false },
        dropped_iterations: { 'count<=0': false },
        mqtt_publishes: { 'count>0': false },
      })
      const published = count(run, 'mqtt_publishes')
      expect(published).toBeGreaterThan(0)
      expect(count(run, 'iterations')).toBe(published)
      expect(rate(run, 'mqtt_publish_failures')).toBe(0)
      expect(count(run, 'dropped_iterations')).toBe(0)
      expect(run.metrics.mqtt_puback_duration?.['p(99)']).toBeGreaterThan(0)

      // Every acknowledged reading reached the broker's subscribers, in the message contract.
      for (let i = 0; i < 50 && received.length < published; i++) await sleep(100)
      expect(received).toHaveLength(published)
      for (const device of devices) {
        const own = received.filter((m) => m.topic === `parking/sensors/${device.device_id}/state`)
        expect(own.length).toBeGreaterThan(0)
        expect(own.map((m) => m.body.seq)).toEqual(own.map((_, i) => i + 1))
        for (const { body } of own) {
          expect(body).toEqual({
            device_id: device.device_id,
            boot_id: own[0]?.body.boot_id,
            seq: expect.any(Number),
            measured_at: expect.any(Number),
            occupied: (body.seq as number) % 2 === 1,
            battery: expect.any(Number),
            signal: -60,
          })
          expect(body.battery).toBeGreaterThanOrEqual(0)
          expect(body.battery).toBeLessThanOrEqual(100)
          expect(Math.abs(Date.now() - (body.measured_at as number))).toBeLessThan(60_000)
        }
      }
    } finally {
      await admin.endAsync()
    }
  }, 90_000)
})

describe('loadtest/availability.js', () => {
  it('reads every path at a constant rate, within its thresholds', async () => {
    const dir = scratchDir('k6-availability')
    const hits = new Map<string, number>()
    const server = createServer((req, res) => {
      hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ free: 12, occupied: 30, total: 42 }))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const paths = ['/api/v1/lots/lot-1/availability', '/api/v1/zones/zone-1/availability']
      const run = await runK6(
        'availability.js',
        {
          BASE_URL: `http://127.0.0.1:${port}`,
          PATHS: paths.join(','),
          RATE: '40',
          DURATION: '3s',
          VUS: '8',
          P99_MS: '500',
        },
        dir,
      )
      expect(run.code, run.output).toBe(0)
      expect(thresholds(run)).toEqual({
        http_req_duration: { 'p(99)<500': false },
        http_req_failed: { 'rate<=0': false },
        dropped_iterations: { 'count<=0': false },
        http_reqs: { 'count>0': false },
      })
      const requests = count(run, 'http_reqs')
      expect(requests).toBeGreaterThan(0)
      expect(count(run, 'iterations')).toBe(requests)
      expect(rate(run, 'http_req_failed')).toBe(0)
      expect(count(run, 'dropped_iterations')).toBe(0)
      expect([...hits.keys()].sort()).toEqual(paths)
      expect([...hits.values()].reduce((a, b) => a + b, 0)).toBe(requests)
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }, 90_000)
})

describe('loadtest/journeys.js', () => {
  it('runs entry -> fee -> pay -> exit journeys against the platform, every one completed', async () => {
    const dir = scratchDir('k6-journeys')
    const platform = await startTestPlatform(testAdmin)
    try {
      const run = await runK6(
        'journeys.js',
        {
          BASE_URL: platform.url,
          ADMIN_EMAIL: testAdmin.ADMIN_EMAIL,
          ADMIN_PASSWORD: testAdmin.ADMIN_PASSWORD,
          RATE: '3',
          DURATION: '3s',
          VUS: '6',
          SPACES: '20',
          // A smoke run on a busy machine: the figures come from real runs (README, Performance).
          STEP_P99_MS: '10000',
        },
        dir,
      )
      expect(run.code, run.output).toBe(0)
      expect(count(run, 'journeys_done')).toBeGreaterThan(0)
      expect(count(run, 'journeys_failed')).toBe(0)
      expect(count(run, 'journeys_done')).toBe(count(run, 'iterations'))
      // Every journey left: the lot's sessions are all closed.
      const active = await platform.services.sessions.active({ limit: 100 })
      expect(active.data).toEqual([])
    } finally {
      await platform.stop()
    }
  }, 120_000)
})

/** A device as the platform would provision it: its own credentials, publishing only under its id. */
async function createDevice(admin: mqtt.MqttClient, deviceId: string, password: string): Promise<void> {
  const responseTopic = '$CONTROL/dynamic-security/v1/response'
  const response = new Promise<{ responses: { command: string; error?: string }[] }>((resolve) => {
    const onMessage = (topic: string, payload: Buffer) => {
      if (topic !== responseTopic) return
      admin.off('message', onMessage)
      resolve(JSON.parse(payload.toString()))
    }
    admin.on('message', onMessage)
  })
  await admin.subscribeAsync(responseTopic, { qos: 1 })
  const role = `device-${deviceId}`
  await admin.publishAsync(
    '$CONTROL/dynamic-security/v1',
    JSON.stringify({
      commands: [
        {
          command: 'createRole',
          rolename: role,
          acls: [{ acltype: 'publishClientSend', topic: `parking/sensors/${deviceId}/#`, allow: true }],
        },
        {
          command: 'createClient',
          username: deviceId,
          password,
          clientid: deviceId,
          roles: [{ rolename: role }],
        },
      ],
    }),
    { qos: 1 },
  )
  const { responses } = await response
  const failed = responses.filter((r) => r.error)
  if (failed.length > 0) throw new Error(`dynamic security refused: ${JSON.stringify(failed)}`)
}
