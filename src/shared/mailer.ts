import { randomBytes } from 'node:crypto'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import nodemailer from 'nodemailer'

// Outgoing e-mail. With an SMTP server configured (SMTP_URL) messages go through it with
// nodemailer; on embedded defaults each message is written as an .eml file to a local outbox
// directory that a developer opens with any mail client.

export type MailMessage = {
  to: string | readonly string[]
  subject: string
  text: string
  html?: string | undefined
}

export type SentMail = { message_id: string; accepted: string[]; file?: string | undefined }

export type Mailer = {
  readonly kind: 'smtp' | 'outbox'
  /** The outbox directory on embedded defaults. */
  readonly outbox: string | undefined
  /** Rejects when the server refused the message or could not be reached. */
  send(message: MailMessage): Promise<SentMail>
  close(): void
}

export type MailerOptions = {
  from: string
  /** smtp://user:pass@host:587 or smtps://...; unset: the outbox. */
  smtpUrl?: string | undefined
  outboxDir: string
  /** How long one delivery may take (connection, greeting, each command). */
  timeoutMs?: number | undefined
  /** NODE_ENV=production: an outbox (no SMTP_URL) is warned about loudly at start. */
  production?: boolean | undefined
  logger?: { warn(object: object, message: string): void } | undefined
}

/** localhost, 127.0.0.0/8 and ::1: a relay on this machine, where plain SMTP reads no wire. */
function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
}

/**
 * nodemailer's options for SMTP_URL. `smtp://` upgrades with STARTTLS only when the server offers
 * it, so a man in the middle who hides the offer reads the credentials: with credentials and a
 * host that is not this machine, STARTTLS is required (`requireTLS`). `smtps://` is TLS from the
 * first byte. The URL's own query (`?requireTLS=false`, for a relay on a trusted network) wins.
 */
export function smtpTransportOptions(smtpUrl: string, timeoutMs: number): Record<string, unknown> {
  const url = new URL(smtpUrl)
  const requireTLS = url.protocol === 'smtp:' && url.username !== '' && !isLoopback(url.hostname)
  return {
    url: smtpUrl,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    ...(requireTLS ? { requireTLS: true } : {}),
  }
}

const recipients = (to: MailMessage['to']): string[] => (typeof to === 'string' ? [to] : [...to])

export function createMailer(options: MailerOptions): Mailer {
  const timeoutMs = options.timeoutMs ?? 15_000
  if (options.smtpUrl) {
    const transport = nodemailer.createTransport(smtpTransportOptions(options.smtpUrl, timeoutMs) as never)
    return {
      kind: 'smtp',
      outbox: undefined,
      async send(message) {
        const info = await transport.sendMail({ from: options.from, ...message, to: recipients(message.to) })
        return {
          message_id: info.messageId,
          accepted: info.accepted.map((a: string | { address: string }) =>
            typeof a === 'string' ? a : a.address,
          ),
        }
      },
      close: () => transport.close(),
    }
  }

  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
  const dir = options.outboxDir
  if (options.production) {
    options.logger?.warn(
      { outbox: dir },
      'NODE_ENV is production but SMTP_URL is not set: NO E-MAIL IS SENT, messages are written to the outbox directory',
    )
  }
  return {
    kind: 'outbox',
    outbox: dir,
    async send(message) {
      const info = await transport.sendMail({ from: options.from, ...message, to: recipients(message.to) })
      await mkdir(dir, { recursive: true })
      // Sortable by time: 20250301T080000123Z-<random>.eml; written then renamed, never half a file.
      const stamp = new Date().toISOString().replaceAll(/[-:.]/g, '')
      const file = join(dir, `${stamp}-${randomBytes(4).toString('hex')}.eml`)
      await writeFile(`${file}.tmp`, info.message as Buffer, { mode: 0o600 })
      await rename(`${file}.tmp`, file)
      return { message_id: info.messageId, accepted: recipients(message.to), file }
    },
    close: () => transport.close(),
  }
}

/** Escapes text for an HTML e-mail body. */
export function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;')
}
