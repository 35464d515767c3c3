import { getConnInfo } from '@hono/node-server/conninfo'
import type { Context } from 'hono'

/**
 * The address a request came from, as the sign-in's rate limit and the audit log read it. Behind a
 * proxy we run (TRUST_PROXY), the rightmost X-Forwarded-For entry is the one that proxy added;
 * entries to its left are the client's word. Otherwise the socket's peer; 'in-process' for
 * requests made without a socket (app.request in tests).
 */
export function clientAddress(c: Context, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = c.req.header('x-forwarded-for')?.split(',').at(-1)?.trim()
    if (forwarded) return forwarded
  }
  try {
    return getConnInfo(c).remote.address ?? 'unknown'
  } catch {
    return 'in-process'
  }
}
