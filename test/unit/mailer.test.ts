import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createMailer, smtpTransportOptions } from '../../src/shared/mailer.ts'

describe('SMTP transport options', () => {
  it('requires STARTTLS for smtp:// with credentials to a host that is not this machine', () => {
    for (const url of ['smtp://user:secret@mail.example.com:587', 'smtp://user@10.0.0.5:25']) {
      expect(smtpTransportOptions(url, 1000)).toMatchObject({ url, requireTLS: true })
    }
  })

  it('leaves smtps://, a server without credentials and a relay on this machine as they are', () => {
    for (const url of [
      'smtps://user:secret@mail.example.com:465',
      'smtp://mail.example.com:25',
      'smtp://user:secret@127.0.0.1:2525',
      'smtp://user:secret@localhost:2525',
      'smtp://user:secret@[::1]:2525',
    ]) {
      expect(smtpTransportOptions(url, 1000).requireTLS).toBeUndefined()
    }
  })

  it('carries the timeouts', () => {
    expect(smtpTransportOptions('smtp://mail.example.com', 1234)).toMatchObject({
      connectionTimeout: 1234,
      greetingTimeout: 1234,
      socketTimeout: 1234,
    })
  })
})

describe('the outbox in production', () => {
  it('is warned about at start, and only in production', () => {
    const outboxDir = join(mkdtempSync(join(tmpdir(), 'mailer-')), 'outbox')
    const warnings: string[] = []
    const logger = { warn: (_object: object, message: string) => warnings.push(message) }
    createMailer({ from: 'a@example.com', outboxDir, production: false, logger }).close()
    expect(warnings).toEqual([])
    createMailer({ from: 'a@example.com', outboxDir, production: true, logger }).close()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('SMTP_URL is not set')
    const smtp = createMailer({
      from: 'a@example.com',
      outboxDir,
      production: true,
      smtpUrl: 'smtp://mail.example.com',
      logger,
    })
    smtp.close()
    expect(warnings).toHaveLength(1)
  })
})
