import { createRoute, z } from '@hono/zod-openapi'
import { HTTPException } from 'hono/http-exception'
import { describe, expect, it } from 'vitest'
import { createHttpApp } from '../../src/http/app.ts'
import { problemResponses } from '../../src/http/openapi.ts'
import { createHealthService } from '../../src/modules/health/health.service.ts'
import { AppError } from '../../src/shared/errors.ts'
import { createLogger } from '../../src/shared/logger.ts'
import { createMetrics } from '../../src/shared/metrics.ts'
import { localDiskStorage } from '../../src/shared/storage.ts'
import { json } from '../harness/http.ts'
import { scratchDir } from '../harness/services.ts'

// The HTTP layer alone, with in-process services, plus a few routes that exist only here to
// exercise body validation and error mapping.

function testApp(
  options: {
    corsOrigins?: string[]
    metricsToken?: string
    bodyLimitBytes?: number
    logLines?: string[]
  } = {},
) {
  const metrics = createMetrics()
  const up = async () => {}
  const services = {
    metrics,
    storage: localDiskStorage(scratchDir('http-layer-documents'), 'test-link-secret'),
    // The account routes are exercised against the real services in test/integration.
    tokens: {} as never,
    accounts: {} as never,
    vehicles: {} as never,
    registrations: {} as never,
    facilities: {} as never,
    sensors: {} as never,
    occupancy: {} as never,
    pricing: {} as never,
    sessions: {} as never,
    discounts: {} as never,
    payments: {} as never,
    reservations: {} as never,
    ev: {} as never,
    memberships: {} as never,
    analytics: {} as never,
    reports: {} as never,
    predictions: {} as never,
    exports: {} as never,
    jobs: {} as never,
    mailJobs: {} as never,
    audit: {} as never,
    webhooks: {} as never,
    health: createHealthService({
      metrics,
      version: 'test',
      probes: { database: up, redis: up, broker: up },
    }),
  }
  const logger = options.logLines
    ? createLogger('debug', {}, { write: (line: string) => void options.logLines?.push(line) })
    : createLogger('silent')
  const app = createHttpApp(services, logger, {
    version: 'test',
    corsOrigins: options.corsOrigins ?? [],
    bodyLimitBytes: options.bodyLimitBytes ?? 2048,
    metricsToken: options.metricsToken,
    trustProxy: false,
  })
  app.openapi(
    createRoute({
      method: 'post',
      path: '/test/things',
      request: {
        body: {
          required: true,
          content: {
            'application/json': {
              schema: z.strictObject({
                name: z.string().min(2),
                count: z.int().positive(),
                tags: z.array(z.string()).optional(),
              }),
            },
          },
        },
      },
      responses: { 201: { description: 'created' }, ...problemResponses('VALIDATION_FAILED') },
    }),
    (c) => c.json(c.req.valid('json'), 201),
  )
  app.get('/test/boom', () => {
    throw new Error('secret driver text at db-7.internal:27017')
  })
  app.get('/test/db-down', () => {
    throw Object.assign(new Error('getaddrinfo db-7.internal'), { name: 'MongoServerSelectionError' })
  })
  return Object.assign(app, { services })
}

const postJson = (body: unknown) => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: typeof body === 'string' ? body : JSON.stringify(body),
})

describe('problem+json', () => {
  it('lists every failing field with where it was and why', async () => {
    const res = await testApp().request(
      '/test/things',
      postJson({ name: 'x', count: -1, tags: [1], extra: true }),
    )
    expect(res.status).toBe(400)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    const body = await json(res)
    expect(body).toMatchObject({
      type: '/problems/validation-failed',
      title: 'The request is not valid',
      status: 400,
      code: 'VALIDATION_FAILED',
      instance: '/test/things',
    })
    expect(body.request_id).toBe(res.headers.get('x-request-id'))
    const fields = body.errors.map((e: { field: string }) => e.field).sort()
    expect(fields).toEqual(['', 'count', 'name', 'tags.0'])
    const name = body.errors.find((e: { field: string }) => e.field === 'name')
    expect(name).toMatchObject({ in: 'body', pointer: '/name' })
    expect(name.reason).toMatch(/2/)
    expect(body.errors.find((e: { field: string }) => e.field === '').reason).toMatch(/extra/)
  })

  it('accepts a valid body', async () => {
    const res = await testApp().request('/test/things', postJson({ name: 'ok', count: 2 }))
    expect(res.status).toBe(201)
    expect(await json(res)).toEqual({ name: 'ok', count: 2 })
  })

  it('answers a body that is not JSON as a malformed request', async () => {
    const res = await testApp().request('/test/things', postJson('{"name": "ok",'))
    expect(res.status).toBe(400)
    expect((await json(res)).code).toBe('MALFORMED_REQUEST')
  })

  it('answers 404 for an unknown path and 405 with Allow for a known path', async () => {
    const app = testApp()
    const missing = await app.request('/nowhere')
    expect(missing.status).toBe(404)
    expect((await json(missing)).code).toBe('NOT_FOUND')

    const wrong = await app.request('/health', { method: 'DELETE' })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('GET, HEAD')
    expect(await json(wrong)).toMatchObject({ code: 'METHOD_NOT_ALLOWED', status: 405 })

    const param = await app.request('/problems/not-found', { method: 'PUT' })
    expect(param.status).toBe(405)

    // A concrete path is not also its templated sibling: /payments/confirm is not /payments/{id}.
    const concrete = await app.request('/api/v1/payments/confirm', { method: 'OPTIONS' })
    expect(concrete.status).toBe(405)
    expect(concrete.headers.get('allow')).toBe('POST')
    const routed = await app.request('/api/v1/payments/confirm')
    expect(routed.status).toBe(405)
    expect(routed.headers.get('allow')).toBe('POST')
  })

  it('answers 413 for a body over the limit, whether announced or streamed', async () => {
    const app = testApp({ bodyLimitBytes: 2048 })
    const big = JSON.stringify({ name: 'x'.repeat(4000), count: 1 })
    const announced = await app.request('/test/things', postJson(big))
    expect(announced.status).toBe(413)
    expect((await json(announced)).code).toBe('PAYLOAD_TOO_LARGE')

    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big))
        controller.close()
      },
    })
    const streamed = await app.request('/test/things', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit)
    expect(streamed.status).toBe(413)
  })

  it('maps errors thrown by Hono middleware to problems by status', async () => {
    const app = testApp()
    app.get('/test/hono-401', () => {
      throw new HTTPException(401, { message: 'token expired' })
    })
    const res = await app.request('/test/hono-401')
    expect(res.status).toBe(401)
    expect(await json(res)).toMatchObject({ code: 'UNAUTHENTICATED', detail: 'token expired' })
  })

  it('keeps the standard members when a capability adds extensions of the same name', async () => {
    const app = testApp()
    app.get('/test/conflict', () => {
      throw new AppError('CONFLICT', 'Already refunded', {
        extensions: { reason: 'not_refundable', status: 'refunded', code: 'mine', title: 'x' },
      })
    })
    const res = await app.request('/test/conflict')
    expect(res.status).toBe(409)
    expect(await json(res)).toMatchObject({ status: 409, code: 'CONFLICT', reason: 'not_refundable' })
  })

  it('hides the text of an unexpected error behind 500', async () => {
    const res = await testApp().request('/test/boom')
    expect(res.status).toBe(500)
    const text = await res.text()
    expect(text).not.toContain('secret')
    expect(text).not.toContain('db-7')
    expect(JSON.parse(text).code).toBe('INTERNAL')
  })

  it('answers a dependency outage with 503 and Retry-After, without the driver message', async () => {
    const res = await testApp().request('/test/db-down')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('2')
    const body = await json(res)
    expect(body.code).toBe('DEPENDENCY_UNAVAILABLE')
    expect(JSON.stringify(body)).not.toContain('db-7')
  })
})

describe('request ids', () => {
  it('gives every response an id and keeps a well-formed one the caller sent', async () => {
    const app = testApp()
    const fresh = await app.request('/health')
    expect(fresh.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const kept = await app.request('/health', { headers: { 'X-Request-Id': 'gate-7-abc123' } })
    expect(kept.headers.get('x-request-id')).toBe('gate-7-abc123')
    const replaced = await app.request('/health', { headers: { 'X-Request-Id': 'bad id <script>' } })
    expect(replaced.headers.get('x-request-id')).not.toContain('<')
  })
})

describe('logs', () => {
  it('writes one line per request carrying its request id, route template and status', async () => {
    const logLines: string[] = []
    const app = testApp({ logLines })
    const res = await app.request('/problems/conflict', { headers: { 'X-Request-Id': 'kiosk-42-req-7' } })
    await app.request('/test/boom')
    const lines = logLines.map((line) => JSON.parse(line))
    const request = lines.find((line) => line.requestId === 'kiosk-42-req-7')
    expect(res.headers.get('x-request-id')).toBe('kiosk-42-req-7')
    expect(request).toMatchObject({ msg: 'request', route: '/problems/:slug', status: 200, method: 'GET' })
    const failure = lines.filter((line) => line.route === '/test/boom' || line.msg === 'unexpected error')
    expect(failure).toHaveLength(2)
    expect(new Set(failure.map((line) => line.requestId)).size).toBe(1)
    expect(failure[0].requestId).toMatch(/^[0-9a-f-]{36}$/)
  })
})

describe('readiness while shutting down', () => {
  it('answers 503 with Retry-After once draining begins', async () => {
    const app = testApp()
    expect((await app.request('/ready')).status).toBe(200)
    app.services.health.startDraining()
    const res = await app.request('/ready')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('2')
    expect((await json(res)).detail).toBe('Not ready: shutting down')
  })
})

describe('CORS', () => {
  it('answers allowed origins only', async () => {
    const app = testApp({ corsOrigins: ['https://console.example'] })
    const allowed = await app.request('/health', { headers: { Origin: 'https://console.example' } })
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://console.example')
    const other = await app.request('/health', { headers: { Origin: 'https://evil.example' } })
    expect(other.headers.get('access-control-allow-origin')).toBeNull()
    const preflight = await app.request('/health', {
      method: 'OPTIONS',
      headers: { Origin: 'https://console.example', 'Access-Control-Request-Method': 'GET' },
    })
    expect(preflight.status).toBe(204)
  })

  it('sends no CORS headers when no origin is configured', async () => {
    const res = await testApp().request('/health', { headers: { Origin: 'https://console.example' } })
    expect(res.headers.get('access-control-allow-origin')).toBeNull()
  })
})

describe('metrics', () => {
  it('counts requests by route template and exposes event-loop delay and dependency status', async () => {
    const app = testApp()
    await app.request('/health')
    await app.request('/problems/not-found')
    await app.request('/problems/conflict')
    await app.request('/ready')
    const text = await (await app.request('/metrics')).text()
    expect(text).toMatch(/http_requests_total\{method="GET",route="\/health",status="200"\} 1/)
    expect(text).toMatch(/http_requests_total\{method="GET",route="\/problems\/:slug",status="200"\} 2/)
    expect(text).toMatch(
      /http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/health",status="200"\}/,
    )
    expect(text).toMatch(/nodejs_eventloop_lag_p99_seconds/)
    expect(text).toMatch(/dependency_up\{dependency="database"\} 1/)
  })

  it('requires the bearer token when one is configured', async () => {
    const app = testApp({ metricsToken: 'a-long-enough-metrics-token' })
    const denied = await app.request('/metrics')
    expect(denied.status).toBe(401)
    expect(denied.headers.get('www-authenticate')).toContain('Bearer')
    const wrong = await app.request('/metrics', {
      headers: { Authorization: 'Bearer a-long-enough-metrics-tokeX' },
    })
    expect(wrong.status).toBe(401)
    const ok = await app.request('/metrics', {
      headers: { Authorization: 'Bearer a-long-enough-metrics-token' },
    })
    expect(ok.status).toBe(200)
  })
})
