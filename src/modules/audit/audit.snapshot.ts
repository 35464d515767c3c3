// What an audit record keeps of a JSON body: secrets replaced, size bounded.

/** Bytes of JSON text kept per snapshot (request body, before, after). */
export const SNAPSHOT_MAX_BYTES = 16_384
export const REDACTED = '[redacted]'

/**
 * Keys whose values are never stored: passwords, secrets (device and Stripe client secrets),
 * tokens (access, refresh, reset), keys, signatures, and card data. Matched on the key alone, at
 * any depth; the whole value under such a key goes, whatever its type.
 */
const SECRET_KEY =
  /pass(word|wd|phrase)|secret|token|authori[sz]ation|api_?key|private_?key|signature|credential|cvc|cvv|card_?number|^(pan|iban|pin|otp)$/i

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key)
}

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 32) return '[too deep]'
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        isSecretKey(key) ? REDACTED : redact(item, depth + 1),
      ]),
    )
  }
  return value
}

/**
 * The redacted JSON text of a value, cut to `max` bytes (on a character boundary) when longer;
 * null for no value.
 */
export function snapshot(
  value: unknown,
  max = SNAPSHOT_MAX_BYTES,
): { text: string | null; truncated: boolean } {
  if (value === undefined || value === null) return { text: null, truncated: false }
  const text = JSON.stringify(redact(value))
  if (Buffer.byteLength(text) <= max) return { text, truncated: false }
  const { read } = new TextEncoder().encodeInto(text, new Uint8Array(max))
  return { text: text.slice(0, read), truncated: true }
}

/** A stored snapshot as the API shows it: the JSON value, or the cut text itself when truncated. */
export function fromSnapshot(text: string | null, truncated: boolean): unknown {
  if (text === null) return null
  if (truncated) return text
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
