import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventId } from '../../src/modules/webhooks/webhooks.contract.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'
import { testAdmin } from '../harness/accounts.ts'

/** A delivery as the receiver saw it. */
type Received = { id: string; timestamp: string; signature: string; body: string; status: number }

/** A real HTTP receiver on 127.0.0.1; `answer` decides each response. */
async function startReceiver() {
  const received: Received[] = []
  let answer: (req: IncomingMessage, res: ServerResponse, body: string) => void = (_req, res) => {
    res.writeHead(200).end('ok')
  }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const entry: Received = {
        id: String(req.headers['webhook-id']),
        timestamp: String(req.headers['webhook-timestamp']),
        signature: String(req.headers['webhook-signature']),
        body,
        status: 0,
      }
      received.push(entry)
      const end = res.end.bind(res)
      res.end = ((...args: Parameters<typeof res.end>) => {
        entry.status = res.statusCode
        return end(...args)
      }) as typeof res.end
      answer(req, res, body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    setAnswer(fn: typeof answer) {
      answer = fn
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** The documented recipe, written here from the README (not the server's signer). */
function verify(secret: string, headers: { timestamp: string; signature: string }, rawBody: string): boolean {
  const expected = createHmac('sha256', secret).update(`${headers.timestamp}.${rawBody}`).digest()
  return headers.signature.split(' ').some((part) => {
    const [version, hex] = part.split('=')
    if (version !== 'v1' || !hex) return false
    const given = Buffer.from(hex, 'hex')
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

let platform: TestPlatform
let receiver: Awaited<ReturnType<typeof startReceiver>>

beforeAll(async () => {
  receiver = await startReceiver()
  platform = await startTestPlatform({
    ...testAdmin,
    JOBS_ENABLED: 'false',
    WEBHOOK_RETRY_BASE_MS: '20',
    WEBHOOK_RETRY_MAX_MS: '200',
    WEBHOOK_POLL_MS: '20',
    WEBHOOK_TIMEOUT_MS: '5000',
  })
})

afterAll(async () => {
  await platform?.stop()
  await receiver?.close()
})

describe('webhooks core', () => {
  it('delivers a published event, signed', async () => {
    const sub = await platform.services.webhooks.create({ url: receiver.url, event_types: ['session.started'] })
    expect(sub.secret).toMatch(/^whsec_[\w-]{43}$/)
    const id = eventId('session.started', randomBytes(6).toString('hex'))
    await platform.services.webhooks.publish([
      { id, type: 'session.started', occurred_at: new Date(), lot_id: null, data: { session_id: 's1' } },
    ])
    const got = await until('the delivery', () => receiver.received.find((r) => r.id === id))
    expect(verify(sub.secret, got, got.body)).toBe(true)
    expect(JSON.parse(got.body)).toMatchObject({ id, type: 'session.started', data: { session_id: 's1' } })
  })
})
