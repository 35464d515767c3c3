import { createServer } from 'node:http'
import { parseArgs } from 'node:util'
import { verifyWebhook, type WebhookEvent } from '../src/client/webhooks.ts'

// `npm run webhooks:receive -- --secret whsec_...`: a webhook receiver to try the platform's
// webhooks with. It checks each delivery's signature, answers 204 at once, drops an event it has
// seen (by Webhook-Id), and prints one line per event. Listens on loopback only.

const usage = `Usage: npm run webhooks:receive -- --secret SECRET [--port N]

Receives the platform's webhook deliveries on http://127.0.0.1:PORT/ (default 4000), verifies
their signatures with SECRET (the subscription's whsec_..., or WEBHOOK_SECRET from the
environment) and prints each event once. Ctrl-C stops it.`

const { values } = parseArgs({
  options: {
    secret: { type: 'string' },
    port: { type: 'string', default: '4000' },
    help: { type: 'boolean', short: 'h' },
  },
})
const secret = values.secret ?? process.env.WEBHOOK_SECRET
const port = Number(values.port)
if (values.help || !secret || !Number.isInteger(port) || port < 1 || port > 65535) {
  console.log(usage)
  process.exit(values.help ? 0 : 2)
}

const seen = new Set<string>()
const server = createServer((request, response) => {
  const chunks: Buffer[] = []
  request.on('data', (chunk: Buffer) => chunks.push(chunk))
  request.on('end', () => {
    const body = Buffer.concat(chunks)
    if (!verifyWebhook(secret, request.headers, body)) {
      console.log(`refused: a delivery whose signature or timestamp does not check out`)
      response.writeHead(400).end()
      return
    }
    response.writeHead(204).end()
    const event = JSON.parse(body.toString('utf8')) as WebhookEvent
    if (seen.has(event.id)) return
    seen.add(event.id)
    console.log(`${event.created_at} ${event.type} ${event.id} ${JSON.stringify(event.data)}`)
  })
})
server.listen(port, '127.0.0.1', () => console.log(`receiving webhooks on http://127.0.0.1:${port}/`))
process.on('SIGINT', () => server.close(() => process.exit(0)))
