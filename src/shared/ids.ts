import { randomBytes } from 'node:crypto'

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ids sort by creation
 * time, so `_id` order is "oldest first" and lists page by `_id` without a second index.
 */
export function uuidv7(now = Date.now()): string {
  const bytes = randomBytes(16)
  bytes.writeUIntBE(now, 0, 6)
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Opaque list cursors: the last `_id` of a page, base64url-encoded. */
export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId).toString('base64url')
}

/** Any cursor is a lower bound for `_id`; one that was not ours just yields some page. */
export function decodeCursor(cursor: string): string {
  return Buffer.from(cursor, 'base64url').toString('utf8')
}

/** A page of a list read with `limit + 1` rows: the extra row only says that more follow. */
export function pageOf<T extends { _id: string }, V>(rows: T[], limit: number, view: (row: T) => V) {
  const data = rows.slice(0, limit)
  const last = data.at(-1)
  return { data: data.map(view), next_cursor: rows.length > limit && last ? encodeCursor(last._id) : null }
}
