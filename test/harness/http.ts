import { expect } from 'vitest'
import type { TestPlatform } from './platform.ts'

/** Parsed JSON for assertions; tests check its shape with expect(). */
// biome-ignore lint/suspicious/noExplicitAny: assertions read arbitrary JSON
export type Json = any

export async function json(res: Response): Promise<Json> {
  return await res.json()
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` })

export const jsonBody = (body: unknown, headers: Record<string, string> = {}) => ({
  headers: { 'Content-Type': 'application/json', ...headers },
  body: JSON.stringify(body),
})

/** Who sends a request: an account (anything with a token), a bare token, or nobody. */
export type Who = { token: string } | string | null | undefined

/**
 * `send(method, path, who?, body?, headers?)` against the platform `platformOf()` answers (a getter,
 * since test files start their platform in beforeAll): a bearer token when `who` is given, and a
 * JSON body when `body` is.
 */
export function requester(platformOf: () => TestPlatform) {
  return (method: string, path: string, who?: Who, body?: unknown, headers: Record<string, string> = {}) => {
    const token = typeof who === 'string' ? who : who?.token
    const auth = { ...(token ? bearer(token) : {}), ...headers }
    return platformOf().request(path, {
      method,
      ...(body === undefined ? { headers: auth } : jsonBody(body, auth)),
    })
  }
}

/**
 * Asserts the status (with the body as the message, so a failure shows the problem) and answers
 * the parsed JSON body, or undefined when there is none.
 */
export async function expectJson(res: Response | Promise<Response>, status = 200): Promise<Json> {
  const response = await res
  const text = await response.text()
  expect(response.status, text).toBe(status)
  return text ? JSON.parse(text) : undefined
}
