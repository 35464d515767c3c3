import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { toolPaths } from '../src/embedded/local-services.ts'
import { freePort } from '../src/embedded/service-process.ts'
import { seedFacility, seedParameters } from './fuzz-seed.ts'
import { isolatedDatabase } from './harness/platform.ts'
import { allServices, artifactsDir, type ServiceSet, scratchDir, startServices } from './harness/services.ts'

// `npm test`: start the real services once on free ports, run the vitest suites against them,
// then run the platform as a process, seed a small facility in it over HTTP (test/fuzz-seed.ts:
// id routes and id fields are fuzzed against real resources) and fuzz it with schemathesis from
// its own /openapi.json: a customer's operations as a customer, then everything as the admin.
// Stops everything and exits non-zero on any failure. Artifacts land in .test-artifacts/.
//
//   node test/run.ts                   vitest, then schemathesis
//   node test/run.ts <vitest args>     vitest only, with those arguments (e.g. a test file)
//   node test/run.ts --fuzz-only [schemathesis args]
//                                      schemathesis only, e.g. `--include-path-regex /sessions`

const root = new URL('../', import.meta.url).pathname
const node = process.execPath
const fuzzOnly = process.argv.includes('--fuzz-only')
const passThrough = process.argv.slice(2).filter((arg) => arg !== '--fuzz-only')

type Outcome = { name: string; passed: number; failed: number; ok: boolean }
const outcomes: Outcome[] = []
let services: ServiceSet<(typeof allServices)[number]> | undefined

async function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  cwd = root,
  rewrite?: (line: string) => string,
): Promise<number> {
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['inherit', rewrite ? 'pipe' : 'inherit', 'inherit'],
  })
  const lines = child.stdout && createInterface({ input: child.stdout })
  lines?.on('line', (line) => console.log(rewrite ? rewrite(line) : line))
  const [code] = await Promise.all([
    new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)))),
    lines && new Promise((resolve) => lines.once('close', resolve)),
  ])
  return code
}

/**
 * schemathesis closes with pytest's banner ("=== 1 warning in 2.28s ==="), which log readers take for
 * pytest's own closing line and read as a run of no tests. The banner keeps its words, not its bars,
 * so that the log's closing line is ours: `total: N passed, N failed`.
 */
const unbanner = (line: string) => line.replace(/^=+ (.*?) =+$/, 'schemathesis: $1')

async function vitest(): Promise<Outcome> {
  const report = join(artifactsDir, 'vitest.json')
  const code = await run(
    node,
    [
      join(root, 'node_modules/vitest/vitest.mjs'),
      'run',
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${report}`,
      ...passThrough,
    ],
    { TEST_SERVICES: JSON.stringify(services?.urls) },
  )
  let passed = 0
  let failed = code === 0 ? 0 : 1
  if (existsSync(report)) {
    const summary = JSON.parse(readFileSync(report, 'utf8')) as {
      numPassedTests: number
      numFailedTests: number
    }
    passed = summary.numPassedTests
    failed = summary.numFailedTests + (code !== 0 && summary.numFailedTests === 0 ? 1 : 0)
  }
  return { name: 'vitest', passed, failed, ok: code === 0 }
}

/** Operations that end the fuzzer's own session; they are fuzzed without its token. */
const sessionEnding = ['logout', 'changePassword']
const neverEnding = ['followLot']
/** Operations of customers alone (their own exports); the admin's run gets 403 from them. */
const customerOperations = ['requestParkingHistoryExport', 'getExport', 'downloadExport']

async function schemathesis(): Promise<Outcome[]> {
  const urls = services?.urls
  if (!urls) throw new Error('services are not running')
  const port = await freePort()
  const dataDir = scratchDir('schemathesis-platform')
  const admin = { email: 'fuzz-admin@example.com', password: `fuzz-${randomBytes(12).toString('hex')}` }
  const platform = spawn(node, [join(root, 'src/main.ts')], {
    // Not the clone's root: a developer's .env must not change what is fuzzed.
    cwd: dataDir,
    env: {
      ...process.env,
      PORT: String(port),
      MONGODB_URI: isolatedDatabase(urls.mongodb),
      REDIS_URL: urls.redis,
      MQTT_URL: urls.mqtt,
      // The run's stripe-mock: an embedded one would take the fixed EMBEDDED_STRIPE_PORT, which a
      // second run (another clone, another engineer) already holds, and the platform would not start.
      STRIPE_API_URL: urls.stripe,
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      ADMIN_EMAIL: admin.email,
      ADMIN_PASSWORD: admin.password,
      // Fuzzing creates webhook subscriptions to whatever URLs it generates (and re-points the seeded
      // one): this instance must never deliver them, or the fuzz stage would POST signed events to
      // hosts on the internet. Deliveries are still queued and logged, so their routes are fuzzed.
      WEBHOOK_DISPATCH_ENABLED: 'false',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const base = `http://127.0.0.1:${port}`
  try {
    const deadline = Date.now() + 60_000
    while (
      !(await fetch(`${base}/ready`)
        .then((r) => r.ok)
        .catch(() => false))
    ) {
      if (platform.exitCode !== null || Date.now() > deadline)
        throw new Error('the platform did not become ready')
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const login = await fetch(`${base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(admin),
    })
    if (!login.ok) throw new Error(`the fuzzing admin could not sign in: ${login.status}`)
    const { access_token: token } = (await login.json()) as { access_token: string }
    // A small facility, so that id routes are fuzzed against real resources (test/fuzz-seed.ts).
    const seed = await seedFacility(base, token)
    const config = join(artifactsDir, 'schemathesis-seeded.toml')
    writeFileSync(config, readFileSync(join(root, 'test/schemathesis.toml'), 'utf8') + seedParameters(seed))
    console.log(`\nschemathesis: fuzzing every operation of ${base}/openapi.json with its default checks\n`)
    // The live feed streams until the client leaves: it is tested in occupancy.test.ts instead.
    const exclude = [...sessionEnding, ...neverEnding].flatMap((id) => ['--exclude-operation-id', id])
    const include = sessionEnding.flatMap((id) => ['--include-operation-id', id])
    const customerOnly = customerOperations.flatMap((id) => ['--include-operation-id', id])
    // The customer's run first: the admin's stateful run deletes users it finds, the seeded
    // customer among them, and their exports go with them.
    return [
      await fuzz('schemathesis (customer-only, as a customer)', base, config, [
        '-H',
        `Authorization: Bearer ${seed.customerToken}`,
        ...customerOnly,
      ]),
      await fuzz('schemathesis (as admin)', base, config, [
        '-H',
        `Authorization: Bearer ${token}`,
        ...exclude,
      ]),
      await fuzz('schemathesis (session-ending, anonymous)', base, config, include),
    ]
  } finally {
    platform.kill('SIGTERM')
    const exited = platform.exitCode !== null || platform.signalCode !== null
    await new Promise((resolve) => (exited ? resolve(null) : platform.once('exit', resolve)))
  }
}

async function fuzz(name: string, base: string, config: string, extra: string[]): Promise<Outcome> {
  const junit = join(artifactsDir, `${name.replace(/\W+/g, '-')}-junit.xml`)
  // Run from .test-artifacts/ so that schemathesis' example cache lands there too.
  const code = await run(
    toolPaths.schemathesis(),
    [
      '--config-file',
      config,
      'run',
      `${base}/openapi.json`,
      '--max-examples=50',
      '--seed=20261123',
      // One worker: with two threads, hypothesis' lambda descriptions (ast.parse) hit a CPython 3.11
      // race ("AST constructor recursion depth mismatch") that fails an operation now and then.
      '--workers=1',
      '--request-timeout=10',
      '--report=junit',
      `--report-junit-path=${junit}`,
      '--no-color',
      ...extra,
      ...(fuzzOnly ? passThrough : []),
    ],
    {},
    artifactsDir,
    unbanner,
  )
  const xml = existsSync(junit) ? readFileSync(junit, 'utf8') : ''
  const cases = (xml.match(/<testcase\b/g) ?? []).length
  const failures = (xml.match(/<(failure|error)\b/g) ?? []).length
  return {
    name,
    passed: Math.max(cases - failures, 0),
    failed: code === 0 ? failures : Math.max(failures, 1),
    ok: code === 0,
  }
}

async function stopServices() {
  await services?.stop()
  services = undefined
}

process.once('SIGINT', () => void stopServices().then(() => process.exit(130)))
process.once('SIGTERM', () => void stopServices().then(() => process.exit(143)))

mkdirSync(artifactsDir, { recursive: true })
const begin = Date.now()
try {
  services = await startServices(scratchDir('services'), allServices)
  console.log(`services up in ${Date.now() - begin} ms: ${Object.keys(services.urls).join(', ')}`)
  if (!fuzzOnly) outcomes.push(await vitest())
  if (fuzzOnly || passThrough.length === 0) outcomes.push(...(await schemathesis()))
} catch (error) {
  console.error(error)
  outcomes.push({ name: 'harness', passed: 0, failed: 1, ok: false })
} finally {
  await stopServices()
}

console.log('')
console.log(`(${((Date.now() - begin) / 1000).toFixed(0)} s)`)
for (const o of outcomes)
  console.log(`${o.name}: ${o.passed} passed, ${o.failed} failed${o.ok ? '' : '  <-- FAILED'}`)
const passed = outcomes.reduce((sum, o) => sum + o.passed, 0)
const failed = outcomes.reduce((sum, o) => sum + o.failed, 0)
console.log(`total: ${passed} passed, ${failed} failed`)
process.exit(outcomes.every((o) => o.ok) ? 0 : 1)
