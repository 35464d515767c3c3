import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { freePort } from '../../src/embedded/service-process.ts'
import { connectDatabase } from '../../src/shared/mongo.ts'
import { scratchDir } from '../harness/services.ts'

// `npm start` as a user runs it: node src/main.ts with no URLs, so it starts its own FerretDB,
// Redis and Mosquitto under DATA_DIR, and stops them all on SIGINT.

const node = new URL('../../node_modules/.bin/node', import.meta.url).pathname
const main = new URL('../../src/main.ts', import.meta.url).pathname
const running: ChildProcess[] = []

afterAll(() => {
  for (const child of running) child.kill('SIGKILL')
})

type Run = { child: ChildProcess; output: () => string; exited: Promise<number | null> }

/** Runs in `cwd` (default: the data directory), so that a developer's own .env is not read. */
function start(env: Record<string, string> & { DATA_DIR: string }, cwd = env.DATA_DIR): Run {
  const clean = { ...process.env }
  for (const key of ['MONGODB_URI', 'REDIS_URL', 'MQTT_URL', 'PORT', 'DATA_DIR', 'TEST_SERVICES'])
    delete clean[key]
  const child = spawn(node, [main], {
    cwd,
    env: { ...clean, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.push(child)
  let output = ''
  child.stdout?.on('data', (chunk) => (output += chunk))
  child.stderr?.on('data', (chunk) => (output += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, output: () => output, exited }
}

async function waitFor(run: Run, text: string, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!run.output().includes(text)) {
    if (run.child.exitCode !== null) throw new Error(`exited early:\n${run.output()}`)
    if (Date.now() > deadline) throw new Error(`"${text}" not seen:\n${run.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function ports() {
  return {
    PORT: String(await freePort()),
    EMBEDDED_MONGODB_PORT: String(await freePort()),
    EMBEDDED_REDIS_PORT: String(await freePort()),
    EMBEDDED_MQTT_PORT: String(await freePort()),
    EMBEDDED_STRIPE_PORT: String(await freePort()),
  }
}

async function installationId(mongoPort: string): Promise<string> {
  const db = await connectDatabase(`mongodb://127.0.0.1:${mongoPort}/smart_parking`)
  try {
    const record = await db.collection('platform').findOne({ _id: 'installation' } as object)
    return String(record?.installation_id)
  } finally {
    await db.close()
  }
}

describe('the platform process on embedded defaults', () => {
  it('starts its own services, is ready, stops in order on SIGINT, and finds its data again', async () => {
    const dataDir = scratchDir('main')
    const env = { DATA_DIR: dataDir, ...(await ports()) }
    const first = start(env)
    await waitFor(first, 'is running')
    expect(first.output()).toContain(`http://127.0.0.1:${env.PORT}/docs`)
    expect(first.output()).toMatch(/broker\s+mqtt:\/\/127\.0\.0\.1/)
    expect(first.output()).not.toMatch(/mqtt:\/\/platform:/)

    const ready = await fetch(`http://127.0.0.1:${env.PORT}/ready`)
    expect(ready.status).toBe(200)
    const id = await installationId(env.EMBEDDED_MONGODB_PORT)
    expect(id).toMatch(/^[0-9a-f-]{36}$/)
    const childPids = ['ferretdb', 'redis', 'mosquitto'].map((name) =>
      Number(readFileSync(join(dataDir, name, `${name}.pid`), 'utf8')),
    )

    first.child.kill('SIGINT')
    expect(await first.exited).toBe(0)
    const log = first.output()
    const order = [
      'http server closed',
      'broker connection closed',
      'redis connection closed',
      'database connection closed',
      'stopping embedded service',
      '"msg":"stopped"',
    ]
    const positions = order.map((line) => log.indexOf(line))
    expect(positions.every((p) => p >= 0)).toBe(true)
    expect([...positions].sort((a, b) => a - b)).toEqual(positions)
    for (const pid of childPids) expect(existsSync(`/proc/${pid}`)).toBe(false)

    const second = start(env)
    await waitFor(second, 'is running')
    expect(await installationId(env.EMBEDDED_MONGODB_PORT)).toBe(id)
    second.child.kill('SIGTERM')
    expect(await second.exited).toBe(0)
  }, 120_000)

  it('refuses a second process on the same data directory and leaves the first one running', async () => {
    const dataDir = scratchDir('main-lock')
    const first = start({ DATA_DIR: dataDir, ...(await ports()) })
    await waitFor(first, 'is running')
    const second = start({ DATA_DIR: dataDir, ...(await ports()) })
    expect(await second.exited).toBe(1)
    expect(second.output()).toContain('another smart-parking process')
    expect(first.child.exitCode).toBeNull()
    first.child.kill('SIGTERM')
    expect(await first.exited).toBe(0)
  }, 90_000)

  it('restarts an embedded service that crashed, and is ready again by itself', async () => {
    const dataDir = scratchDir('main-crash')
    const env = { DATA_DIR: dataDir, ...(await ports()) }
    const run = start(env)
    await waitFor(run, 'is running')
    const pid = Number(readFileSync(join(dataDir, 'redis', 'redis.pid'), 'utf8'))
    process.kill(pid, 'SIGKILL')

    const readyStatus = async () => (await fetch(`http://127.0.0.1:${env.PORT}/ready`)).status
    await waitFor(run, 'embedded service exited unexpectedly')
    expect(await readyStatus()).toBe(503)
    await waitFor(run, 'embedded service restarted', 20_000)
    const deadline = Date.now() + 15_000
    while ((await readyStatus()) !== 200 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200))
    expect(await readyStatus()).toBe(200)
    expect(Number(readFileSync(join(dataDir, 'redis', 'redis.pid'), 'utf8'))).not.toBe(pid)

    run.child.kill('SIGTERM')
    expect(await run.exited).toBe(0)
  }, 90_000)

  it('stops at once with every configuration problem listed, from the environment and .env', async () => {
    const dir = scratchDir('main-config')
    // The environment wins over .env: its good PORT stands, its bad LOG_LEVEL is reported.
    writeFileSync(join(dir, '.env'), 'LOG_LEVEL=loud\nPORT=3000\nMIGRATE_ON_START=perhaps\n')
    const run = start({ PORT: 'eighty', DATA_DIR: dir, LOG_LEVEL: 'loud' })
    expect(await run.exited).toBe(1)
    expect(run.output()).toContain('PORT: Invalid input: expected number, received NaN (got "eighty")')
    expect(run.output()).toContain('LOG_LEVEL:')
    expect(run.output()).toContain('MIGRATE_ON_START:')
    expect(run.output()).toContain('.env.example')
  })
})
