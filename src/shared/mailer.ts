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
}

const recipients = (to: MailMessage['to']): string[] => (typeof to === 'string' ? [to] : [...to])

export function createMailer(options: MailerOptions): Mailer {
  const timeoutMs = options.timeoutMs ?? 15_000
  if (options.smtpUrl) {
    const transport = nodemailer.createTransport({
      url: options.smtpUrl,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    } as never)
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
