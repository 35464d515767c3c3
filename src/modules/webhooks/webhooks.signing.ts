import { createHmac, randomBytes } from 'node:crypto'
import type { SigningSecret } from './webhooks.model.ts'

/** `whsec_` and 32 random bytes, base64url. The whole string is the HMAC key. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`
}

/** `v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`, one per secret, space-separated. */
export function signatureHeader(secrets: readonly string[], timestamp: number, rawBody: string): string {
  return secrets
    .map((secret) => `v1=${createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex')}`)
    .join(' ')
}

/** The secrets that sign now: the current one and rotated-out ones still inside their overlap. */
export function activeSecrets(secrets: readonly SigningSecret[], now: Date): string[] {
  return secrets.filter((s) => s.expires_at === null || s.expires_at > now).map((s) => s.secret)
}
