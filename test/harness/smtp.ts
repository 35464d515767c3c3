import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'

// A real SMTP server in the test process (the `smtp-server` package) on a free port: the platform
// under test sends through it with nodemailer, and tests assert on what it received.

export type ReceivedMail = {
  from: string
  to: string[]
  subject: string
  /** The decoded text/plain part. */
  text: string
  /** The decoded text/html part, if any. */
  html: string | undefined
  raw: string
}

export type TestSmtp = {
  /** smtp://user:pass@127.0.0.1:<port>, for SMTP_URL. */
  url: string
  messages: ReceivedMail[]
  /** Messages to an address. */
  to(address: string): ReceivedMail[]
  /** Resolves once `count` messages match, or rejects after `timeoutMs`. */
  waitFor(match: (m: ReceivedMail) => boolean, count?: number, timeoutMs?: number): Promise<ReceivedMail[]>
  /** Refuse every message with a 451 while set (a server in trouble). */
  refuse: boolean
  stop(): Promise<void>
}

export const SMTP_USER = 'platform'
export const SMTP_PASSWORD = 'smtp-test-password'

export async function startSmtp(): Promise<TestSmtp> {
  const messages: ReceivedMail[] = []
  const state = { refuse: false }
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === SMTP_USER && auth.password === SMTP_PASSWORD)
        callback(null, { user: auth.username })
      else callback(new Error('Invalid username or password'))
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('end', () => {
        if (state.refuse) {
          const error = new Error('Try again later') as Error & { responseCode: number }
          error.responseCode = 451
          callback(error)
          return
        }
        const raw = Buffer.concat(chunks).toString('utf8')
        messages.push({
          ...parseMessage(raw),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
        })
        callback()
      })
    },
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.server.address() as AddressInfo).port
  return {
    url: `smtp://${SMTP_USER}:${SMTP_PASSWORD}@127.0.0.1:${port}`,
    messages,
    to: (address) => messages.filter((m) => m.to.includes(address)),
    get refuse() {
      return state.refuse
    },
    set refuse(value: boolean) {
      state.refuse = value
    },
    async waitFor(match, count = 1, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const found = messages.filter(match)
        if (found.length >= count) return found
        if (Date.now() > deadline) {
          throw new Error(`expected ${count} matching e-mail(s), got ${found.length} of ${messages.length}`)
        }
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

// A small MIME reader for what nodemailer writes: headers, multipart bodies, quoted-printable and
// base64 parts. Enough for assertions; not a general mail parser.

function splitHeaders(raw: string): { headers: Map<string, string>; body: string } {
  const text = raw.replaceAll('\r\n', '\n')
  const end = text.indexOf('\n\n')
  const head = end === -1 ? text : text.slice(0, end)
  const body = end === -1 ? '' : text.slice(end + 2)
  const headers = new Map<string, string>()
  for (const line of head.replaceAll(/\n[ \t]+/g, ' ').split('\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { headers, body }
}

function decodeBody(body: string, encoding: string | undefined): string {
  switch ((encoding ?? '7bit').toLowerCase()) {
    case 'base64':
      return Buffer.from(body.replaceAll(/\s+/g, ''), 'base64').toString('utf8')
    case 'quoted-printable': {
      const bytes = body.replaceAll(/=\n/g, '').replaceAll(/=([0-9A-F]{2})/gi, (_, hex: string) => `%${hex}`)
      try {
        return decodeURIComponent(bytes.replaceAll(/%(?![0-9A-F]{2})/gi, '%25'))
      } catch {
        return bytes
      }
    }
    default:
      return body
  }
}

/** `=?UTF-8?Q?...?=` and `=?UTF-8?B?...?=` words of a header. */
function decodeWords(value: string): string {
  return value.replaceAll(
    /=\?([^?]+)\?([QB])\?([^?]*)\?=/gi,
    (_, _charset: string, kind: string, data: string) =>
      kind.toUpperCase() === 'B'
        ? Buffer.from(data, 'base64').toString('utf8')
        : decodeBody(data.replaceAll('_', ' '), 'quoted-printable'),
  )
}

function parseMessage(raw: string): Omit<ReceivedMail, 'from' | 'to' | 'raw'> {
  const { headers, body } = splitHeaders(raw)
  const parts: { type: string; text: string }[] = []
  const walk = (contentType: string, encoding: string | undefined, content: string) => {
    const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1]
    if (/^multipart\//i.test(contentType) && boundary) {
      for (const section of content.split(`--${boundary}`).slice(1)) {
        if (section.startsWith('--')) break
        const part = splitHeaders(section.replace(/^\n/, ''))
        walk(
          part.headers.get('content-type') ?? 'text/plain',
          part.headers.get('content-transfer-encoding'),
          part.body,
        )
      }
      return
    }
    parts.push({
      type: contentType.split(';')[0]?.trim().toLowerCase() ?? '',
      text: decodeBody(content, encoding),
    })
  }
  walk(headers.get('content-type') ?? 'text/plain', headers.get('content-transfer-encoding'), body)
  return {
    subject: decodeWords(headers.get('subject') ?? ''),
    text: parts.find((p) => p.type === 'text/plain')?.text.trimEnd() ?? '',
    html: parts.find((p) => p.type === 'text/html')?.text,
  }
}

export { parseMessage as parseMimeMessage }
