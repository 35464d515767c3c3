import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { undocumentedRoutes } from '../../src/http/app.ts'
import { errorCodes, errorTitles, problemTypeOf, statusOf } from '../../src/shared/errors.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The whole platform on the shared real services, over a real socket where it matters.

let platform: TestPlatform
beforeAll(async () => {
  platform = await startTestPlatform()
})
afterAll(async () => {
  await platform?.stop()
})

describe('operations endpoints', () => {
  it('is live and ready on real services', async () => {
    const live = await fetch(`${platform.url}/health`)
    expect(live.status).toBe(200)
    expect(await json(live)).toMatchObject({ status: 'ok' })

    const ready = await fetch(`${platform.url}/ready`)
    expect(ready.status).toBe(200)
    const body = await json(ready)
    expect(body.status).toBe('ready')
    for (const name of ['database', 'redis', 'broker']) expect(body.checks[name].status).toBe('up')
  })

  it('serves Prometheus metrics with dependency status after a readiness probe', async () => {
    await platform.request('/ready')
    const res = await platform.request('/metrics')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/)
    const text = await res.text()
    for (const name of ['database', 'redis', 'broker'])
      expect(text).toContain(`dependency_up{dependency="${name}"} 1`)
  })
})

describe('the OpenAPI document', () => {
  it('is OpenAPI 3.1 and gives every operation an id, a summary, security and responses', async () => {
    const doc = await json(await platform.request('/openapi.json'))
    expect(doc.openapi).toBe('3.1.0')
    const operations = Object.values(
      doc.paths as Record<string, Record<string, Record<string, unknown>>>,
    ).flatMap((item) => Object.values(item))
    expect(operations.length).toBeGreaterThan(0)
    for (const op of operations) {
      expect(op.operationId).toEqual(expect.any(String))
      expect(op.summary).toEqual(expect.any(String))
      expect(op.security).toBeDefined()
      expect(Object.keys(op.responses as object)).toContain('500')
    }
    const ids = operations.map((op) => op.operationId)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('gives each component its own name: the parking session is not the sign-in session', async () => {
    const doc = await json(await platform.request('/openapi.json'))
    const schemas = doc.components.schemas as Record<string, { properties?: Record<string, unknown> }>
    // Two schemas registered under one name share one component: the entry's session was documented
    // as a token pair (access_token required), so every real entry answer failed its own schema.
    expect(Object.keys(schemas.Session?.properties ?? {})).toContain('ticket_number')
    expect(Object.keys(schemas.AuthSession?.properties ?? {})).not.toContain('ticket_number')
    expect(JSON.stringify(schemas.AuthSession)).toContain('#/components/schemas/TokenPair')
  })

  it('documents exactly the routes the app registers', async () => {
    const doc = await json(await platform.request('/openapi.json'))
    const documented = Object.entries(doc.paths as Record<string, object>)
      .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
      .sort()
    const registered = platform.app.routes
      .filter((route) => route.method !== 'ALL' && !undocumentedRoutes.includes(route.path))
      // `:id{[0-9a-f-]+}` (a parameter with its pattern, see facilities) is `{id}` in OpenAPI.
      .map((route) => `${route.method} ${route.path.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}')}`)
    expect([...new Set(registered)].sort()).toEqual(documented)
  })

  it('renders the API reference at /docs without any CDN', async () => {
    const html = await (await fetch(`${platform.url}/docs`)).text()
    expect(html).toContain('swagger-ui')
    const scripts = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string)
    expect(scripts.length).toBeGreaterThanOrEqual(3)
    for (const src of scripts) {
      expect(src.startsWith('/docs/assets/')).toBe(true)
      const asset = await fetch(`${platform.url}${src}`)
      expect(asset.status).toBe(200)
      expect((await asset.text()).length).toBeGreaterThan(20)
    }
  })
})

describe('problem types', () => {
  it('resolves the type link of a problem to its description', async () => {
    const problem = await json(await fetch(`${platform.url}/no/such/path`))
    expect(problem.type).toBe('/problems/not-found')
    const type = await json(await fetch(`${platform.url}${problem.type}`))
    expect(type).toEqual({ type: '/problems/not-found', code: 'NOT_FOUND', status: 404, title: 'Not found' })
  })

  it.each(errorCodes)('describes %s with the status its problems carry', async (code) => {
    const type = await json(await platform.request(problemTypeOf(code)))
    expect(type).toEqual({
      type: problemTypeOf(code),
      code,
      status: statusOf(code),
      title: errorTitles[code],
    })
  })

  it('rejects an unknown problem type with the failing path parameter', async () => {
    const res = await platform.request('/problems/no-such-problem')
    expect(res.status).toBe(400)
    const body = await json(res)
    expect(body.errors).toEqual([expect.objectContaining({ in: 'path', field: 'slug' })])
  })
})

describe('graceful stop', () => {
  it('lets a request in flight finish, then refuses new connections', async () => {
    const own = await startTestPlatform()
    let release: () => void = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    // Registered before the app's first request, while its router can still take routes.
    own.app.get('/test/slow', async (c) => {
      await held
      return c.text('finished')
    })
    const inFlight = fetch(`${own.url}/test/slow`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const stopped = own.stop()
    await new Promise((resolve) => setTimeout(resolve, 100))
    release()
    const res = await inFlight
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('finished')
    await stopped
    await expect(fetch(`${own.url}/health`)).rejects.toThrow()
  })
})
