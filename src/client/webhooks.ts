import { createHmac, timingSafeEqual } from 'node:crypto'

// What a receiver of the platform's webhooks needs: the body it gets and the check of its
// signature (the recipe of src/modules/webhooks/README.md). Written apart from the platform's
// signer on purpose: the two meet only in the documented recipe, and a test holds them to it.

/** The JSON body of every delivery. */
export type WebhookEvent = {
  /** The event id, also the `Webhook-Id` header: deduplicate by it (delivery is at least once). */
  id: string
  type: string
  /** When the fact happened (RFC 3339, UTC). */
  created_at: string
  lot_id: string | null
  data: Record<string, unknown>
}

/** How old (or how far in the future) a delivery's timestamp may be, by default: 5 minutes. */
export const DEFAULT_TOLERANCE_SECONDS = 300

/**
 * Whether a delivery is authentic: one of the `v1=` signatures of `Webhook-Signature` is the
 * HMAC-SHA256, keyed by the subscription's secret (the whole `whsec_...` string), of
 * `"<Webhook-Timestamp>.<raw body>"`, and the timestamp is within the tolerance of `now`.
 * `headers` are the request's, with lower-case names; `rawBody` is the body exactly as received.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  rawBody: string | Buffer,
  options: { toleranceSeconds?: number; now?: Date } = {},
): boolean {
  const timestamp = String(headers['webhook-timestamp'] ?? '')
  const signatures = String(headers['webhook-signature'] ?? '')
  if (!/^\d{1,12}$/.test(timestamp)) return false
  const nowSeconds = (options.now ?? new Date()).getTime() / 1000
  if (Math.abs(nowSeconds - Number(timestamp)) > (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS))
    return false
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest()
  return signatures.split(' ').some((part) => {
    const [version, hex] = part.split('=')
    if (version !== 'v1' || !hex || !/^[0-9a-f]+$/i.test(hex)) return false
    const given = Buffer.from(hex, 'hex')
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
}
