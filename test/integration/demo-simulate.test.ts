import { spawn } from 'node:child_process'
import { readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Account, bearer, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { type Json, json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'
import { scratchDir } from '../harness/services.ts'

// `npm run demo` and `npm run simulate` as a user runs them: child processes that reach the
// platform through its HTTP API and its broker only.

const node = new URL('../../node_modules/.bin/node', import.meta.url).pathname
const script = (name: string) => new URL(`../../scripts/${name}.ts`, import.meta.url).pathname

let platform: TestPlatform
let admin: Account
let workDir: string
let devicesFile: string
let brokerUrl: string

type Run = { code: number | null; stdout: string; stderr: string }

/** Runs in a scratch directory, so that a developer's .env is not read, with DATA_DIR in it. */
async function run(name: string, args: string[], env: Record<string, string> = testAdmin): Promise<Run> {
  const clean = { ...process.env }
  for (const key of ['MQTT_URL', 'DATA_DIR', 'PORT', 'HOST', 'PUBLIC_URL', 'ADMIN_EMAIL', 'ADMIN_PASSWORD'])
    delete clean[key]
  const child = spawn(node, [script(name), ...args], {
    cwd: workDir,
    env: { ...clean, DATA_DIR: join(workDir, 'data'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { code, stdout, stderr }
}

const demo = (env?: Record<string, string>) =>
  run('demo', ['--url', platform.url, '--lots', '1', '--levels', '1', '--zones', '1', '--spaces', '10'], env)

const get = async (path: string) => {
  const res = await platform.request(path, { headers: bearer(admin.token) })
  expect(res.status, path).toBe(200)
  return await json(res)
}

const readDevices = () => JSON.parse(readFileSync(devicesFile, 'utf8')) as Record<string, string>[]

beforeAll(async () => {
  platform = await startTestPlatform({ ...testAdmin, INGEST_ENABLED: 'true', OCCUPANCY_DWELL_MS: '0' })
  admin = await signInAdmin(platform)
  workDir = scratchDir('demo')
  devicesFile = join(workDir, 'data', 'demo', 'devices.json')
  // Devices sign in with their own credentials, not the platform's.
  const broker = new URL(platform.urls.mqtt)
  broker.username = ''
  broker.password = ''
  brokerUrl = broker.toString()
})
afterAll(async () => {
  await platform?.stop()
})

describe('npm run demo', () => {
  it('says what is missing when the admin credentials are not set', async () => {
    const result = await demo({})
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('ADMIN_EMAIL and ADMIN_PASSWORD are not set')
  })

  it('makes the lot, its spaces and one sensor per space, and writes their credentials', async () => {
    const result = await demo()
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/Demo Garage \(lot [0-9a-f-]{36}\) created: 1 level \(1 new\)/)
    expect(result.stdout).toContain('10 spaces (10 new), 10 sensors (10 new)')
    expect(result.stdout).toContain('/availability')

    const lots = (await get('/api/v1/lots?name_prefix=Demo%20Garage')).data
    expect(lots.map((lot: { name: string }) => lot.name)).toEqual(['Demo Garage'])
    const lot = lots[0]
    expect(lot).toMatchObject({ time_zone: 'Europe/Berlin', currency: 'EUR' })
    const spaces = (await get(`/api/v1/spaces?lot_id=${lot.id}&limit=100`)).data
    expect(spaces).toHaveLength(10)
    expect(new Set(spaces.map((s: { type: string }) => s.type))).toEqual(
      new Set(['STANDARD', 'COMPACT', 'HANDICAPPED', 'EV', 'MOTORCYCLE']),
    )
    const devices = (await get('/api/v1/devices?kind=sensor&limit=100')).data
    expect(devices).toHaveLength(10)
    expect(new Set(devices.map((d: { space_id: string }) => d.space_id))).toEqual(
      new Set(spaces.map((s: { id: string }) => s.id)),
    )

    expect(statSync(devicesFile).mode & 0o777).toBe(0o600)
    const entries = readDevices()
    expect(entries).toHaveLength(10)
    for (const entry of entries) {
      expect(Object.keys(entry).sort()).toEqual(['device_id', 'lot_id', 'password', 'space_id', 'username'])
      expect(entry.lot_id).toBe(lot.id)
      expect(entry.username).toBe(entry.device_id)
    }
  })

  it('changes nothing when run again, and says so', async () => {
    const before = readFileSync(devicesFile, 'utf8')
    const result = await demo()
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('Nothing to do')
    expect(result.stdout).toContain('10 spaces, 10 sensors')
    expect(result.stdout).not.toContain('new)')
    expect(readFileSync(devicesFile, 'utf8')).toBe(before)
    expect((await get('/api/v1/lots?name_prefix=Demo%20Garage')).data).toHaveLength(1)
  })

  it('issues new credentials when the file is gone but the sensors exist', async () => {
    const before = readDevices()
    rmSync(devicesFile)
    const result = await demo()
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('10 sensors given new credentials')
    const after = readDevices()
    expect(after.map((e) => e.device_id)).toEqual(before.map((e) => e.device_id))
    for (const [i, entry] of after.entries()) expect(entry.password).not.toBe(before[i]?.password)
    expect(statSync(devicesFile).mode & 0o777).toBe(0o600)
  })
})

describe('npm run simulate', () => {
  it('publishes every sensor at the rate asked, all acknowledged, and every space gets a reading', async () => {
    const result = await run('simulate', [
      '--mqtt',
      brokerUrl,
      '--rate',
      '100',
      '--duration',
      '3',
      '--malformed',
      '0.05',
    ])
    expect(result.code, result.stdout + result.stderr).toBe(0)
    const figure = (label: string) =>
      Number(new RegExp(`^\\s*${label}\\s+(\\d+)`, 'm').exec(result.stdout)?.[1])
    const sent = figure('sent')
    expect(sent).toBeGreaterThan(150)
    expect(sent).toBeLessThanOrEqual(310)
    expect(figure('acknowledged')).toBe(sent)
    expect(figure('failed')).toBe(0)
    expect(result.stdout).toMatch(/average rate\s+\d/)
    expect(result.stdout).toMatch(/duration\s+3\.\d s/)

    const lot = (await get('/api/v1/lots?name_prefix=Demo%20Garage')).data[0]
    // The broker acknowledges on receipt; the platform applies the readings moments later.
    let availability: Json = {}
    for (let i = 0; i < 100; i++) {
      availability = await json(await platform.request(`/api/v1/lots/${lot.id}/availability`))
      if (availability.unknown === 0) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    // On failure, say what the pipeline made of the messages.
    const ingested = (await (await platform.request('/metrics')).text())
      .split('\n')
      .filter((line) => line.startsWith('ingest_messages_total'))
      .join('; ')
    expect(availability, ingested).toMatchObject({ total: 10, unknown: 0 })
    expect(availability.available + availability.occupied).toBe(10)

    const ours = readDevices().map((entry) => entry.device_id)
    const letters = (await get('/api/v1/ingest/dead-letters?limit=500')).data.filter(
      (letter: { topic: string }) => ours.some((id) => letter.topic.includes(`/${id}/`)),
    )
    // Every garbage message, and nothing else of ours, ends in the dead letters.
    const malformed = Number(/(\d+) malformed/.exec(result.stdout)?.[1])
    expect(malformed).toBeGreaterThan(0)
    expect(letters).toHaveLength(malformed)
  })

  it('says where the devices file should come from when there is none', async () => {
    const result = await run('simulate', ['--devices', join(workDir, 'none.json'), '--mqtt', brokerUrl])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('run npm run demo first')
  })
})
