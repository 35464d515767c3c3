import { randomBytes } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { verifyWebhook, type WebhookEvent } from '../../src/client/webhooks.ts'
import type { Json } from './http.ts'

// A webhook receiver for tests: one node:http server on 127.0.0.1 (a free port) in the test
// process. Each endpoint is a path of its own with its own programmable answer; every request is
// recorded with its headers, its raw body and the event parsed from it. Signatures are checked
// with the receivers' verifier (src/client/webhooks.ts), written apart from the platform's signer
// and held to it by test/unit/webhook-signature.test.ts.

/** A delivery's event as received; `data` is left loose so that tests can reach into it. */
export type ReceivedEvent = Omit<WebhookEvent, 'data'> & { data: Json }

export type ReceivedWebhook = {
  path: string
  /** The request's headers (lower-case names), as verifyWebhook takes them. */
  headers: IncomingHttpHeaders
  /** The Webhook-Id, Webhook-Timestamp and Webhook-Signature headers ('' when missing). */
  id: string
  timestamp: string
  signature: string
  /** The body exactly as received, and as text. */
  raw: Buffer
  text: string
  /** The parsed body; reading it throws if the body was not JSON (the receiver answered 400). */
  readonly event: ReceivedEvent
  /** The status code answered; 0 while no answer has been sent (a held request). */
  status: number
}

/** How an endpoint answers one request. */
export type Answer = (got: ReceivedWebhook, res: ServerResponse) => void

/** Answers with `status` and an optional text body. */
export const reply =
  (status: number, body = '', headers: Record<string, string> = {}): Answer =>
  (_got, res) => {
    res.writeHead(status, { 'Content-Type': 'text/plain', ...headers }).end(body)
  }

/** The default answer: 200 with the body `thanks`. */
export const ok: Answer = reply(200, 'thanks')

/** Answers `times` requests with `failure` (500 by default), then every one with `then`. */
export function failTimes(times: number, failure: Answer = reply(500), then: Answer = ok): Answer {
  let left = times
  return (got, res) => (left-- > 0 ? failure : then)(got, res)
}

/** Holds every request open, without an answer, until `release()`; then answers them with `then`. */
export function holdUntilReleased(then: Answer = ok) {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const answer: Answer = (got, res) => {
    void released.then(() => then(got, res))
  }
  return { answer, release: () => release() }
}

export type WebhookEndpoint = {
  path: string
  /** http://127.0.0.1:<port><path>, for a subscription's url. */
  url: string
  /** The requests this endpoint got, in the order they arrived. */
  received(): ReceivedWebhook[]
  /** Changes how it answers the requests from now on. */
  answer(next: Answer): void
}

export type WebhookReceiver = {
  /** http://127.0.0.1:<port> */
  origin: string
  /** Every request, to any path, in the order they arrived. */
  received: ReceivedWebhook[]
  /** A fresh endpoint (a random path unless `path` is given) answered by `answer`. */
  endpoint(answer?: Answer, path?: string): WebhookEndpoint
  close(): Promise<void>
}

const header = (headers: IncomingHttpHeaders, name: string) => String(headers[name] ?? '')

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = []
  const answers = new Map<string, Answer>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      const text = raw.toString('utf8')
      let parsed: { event: ReceivedEvent } | { error: string }
      try {
        parsed = { event: JSON.parse(text) }
      } catch (error) {
        parsed = { error: String(error) }
      }
      const got: ReceivedWebhook = {
        path: req.url ?? '',
        headers: req.headers,
        id: header(req.headers, 'webhook-id'),
        timestamp: header(req.headers, 'webhook-timestamp'),
        signature: header(req.headers, 'webhook-signature'),
        raw,
        text,
        get event() {
          if ('error' in parsed) throw new Error(`the body is not JSON (${parsed.error}): ${text}`)
          return parsed.event
        },
        status: 0,
      }
      received.push(got)
      res.on('finish', () => {
        got.status = res.statusCode
      })
      if ('error' in parsed) reply(400, 'not JSON')(got, res)
      else (answers.get(got.path) ?? ok)(got, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    origin,
    received,
    endpoint(answer = ok, path = `/hook/${randomBytes(6).toString('hex')}`) {
      answers.set(path, answer)
      return {
        path,
        url: `${origin}${path}`,
        received: () => received.filter((r) => r.path === path),
        answer: (next) => answers.set(path, next),
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/**
 * Whether a received request is signed with `secret` and recent, by the receivers' verifier
 * (verifyWebhook: a `v1=` HMAC of "<timestamp>.<raw body>", the timestamp within 5 minutes of
 * `now` unless told otherwise).
 */
export function signedBy(
  secret: string,
  got: Pick<ReceivedWebhook, 'headers' | 'raw'>,
  options: { now?: Date; toleranceSeconds?: number } = {},
): boolean {
  return verifyWebhook(secret, got.headers, got.raw, options)
}
