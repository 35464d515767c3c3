import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'
import { type ServiceSet, scratchDir, startServices } from '../harness/services.ts'

// Services of its own, so that stopping them does not disturb other test files.

let services: ServiceSet<'mongodb' | 'redis' | 'mqtt'>
let platform: TestPlatform

beforeAll(async () => {
  services = await startServices(scratchDir('readiness'), ['mongodb', 'redis', 'mqtt'])
  platform = await startTestPlatform({}, services.urls)
})
afterAll(async () => {
  await platform?.stop()
  await services?.stop()
})

async function readiness() {
  const res = await platform.request('/ready')
  return { status: res.status, body: await json(res) }
}

async function eventually(predicate: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await predicate()) return true
    await sleep(200)
  }
  return false
}

describe.each([
  ['database', 'mongodb'],
  ['redis', 'redis'],
  ['broker', 'mqtt'],
] as const)('when the %s goes down and comes back', (dependency, service) => {
  it('answers 503 naming it, then 200 again without a restart', async () => {
    expect((await readiness()).status).toBe(200)

    await services.services[service].process.stop()
    expect(await eventually(async () => (await readiness()).status === 503, 10_000)).toBe(true)
    const down = await readiness()
    expect(down.body).toMatchObject({ status: 503, code: 'DEPENDENCY_UNAVAILABLE' })
    expect(down.body.detail).toContain(dependency)
    expect(down.body.checks[dependency].status).toBe('down')
    for (const other of ['database', 'redis', 'broker'].filter((name) => name !== dependency)) {
      expect(down.body.checks[other].status).toBe('up')
      expect(down.body.detail).not.toContain(other)
    }
    const metrics = await (await platform.request('/metrics')).text()
    expect(metrics).toContain(`dependency_up{dependency="${dependency}"} 0`)

    await services.services[service].process.start()
    expect(await eventually(async () => (await readiness()).status === 200, 20_000)).toBe(true)
  })
})
