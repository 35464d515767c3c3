// The platform's REST API as the console uses it: sign-in, tokens kept in memory and in this tab's
// sessionStorage (a reload keeps the sign-in, closing the tab ends it), a refresh before the access
// token expires, and one retry after a 401 with a fresh token.

const STORE = 'smart-parking.console.session'
/** Refresh this long before the access token expires. */
const REFRESH_AHEAD_MS = 60_000
const STAFF = ['operator', 'admin']

/** A refused request: the problem+json body's detail and code when there is one. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request did not reach the platform
   * @param {string} message
   * @param {string} [code]
   */
  constructor(status, message, code) {
    super(message)
    this.status = status
    this.code = code ?? null
  }
}

/**
 * @typedef {{ id: string, email: string, full_name: string, role: string }} User
 * @typedef {{ access_token: string, refresh_token: string, expires_at: number, user: User }} Session
 */

/** @param {Response} res */
async function errorOf(res) {
  let detail = `${res.status} ${res.statusText}`
  let code
  try {
    const body = await res.json()
    detail = body.detail ?? body.title ?? detail
    code = body.code
  } catch {
    // not JSON: the status line says it
  }
  return new ApiError(res.status, detail, code)
}

/** fetch, with a network failure as an ApiError of status 0. */
async function send(path, init) {
  try {
    return await fetch(path, init)
  } catch {
    throw new ApiError(0, 'The platform cannot be reached')
  }
}

/**
 * @param {{ onSignedOut: (reason: string) => void }} hooks called when the session ends by itself
 */
export function createApi(hooks) {
  /** @type {Session | null} */
  let session = null
  /** @type {Promise<void> | null} */
  let refreshing = null
  let timer = 0

  try {
    const stored = JSON.parse(sessionStorage.getItem(STORE) ?? 'null')
    if (stored?.access_token && stored.refresh_token && STAFF.includes(stored.user?.role)) session = stored
  } catch {
    sessionStorage.removeItem(STORE)
  }

  const schedule = (ms) => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      refresh().catch(() => {})
    }, ms)
  }

  /** @param {{ access_token: string, refresh_token: string, expires_in: number }} pair @param {User} user */
  const adopt = (pair, user) => {
    session = {
      access_token: pair.access_token,
      refresh_token: pair.refresh_token,
      expires_at: Date.now() + pair.expires_in * 1000,
      user,
    }
    sessionStorage.setItem(STORE, JSON.stringify(session))
    schedule(Math.max(5_000, session.expires_at - Date.now() - REFRESH_AHEAD_MS))
  }

  const forget = () => {
    clearTimeout(timer)
    session = null
    sessionStorage.removeItem(STORE)
  }

  /** Trades the refresh token for a new pair; one at a time (each refresh token works once). */
  const refresh = () => {
    refreshing ??= (async () => {
      const current = session
      if (!current) throw new ApiError(401, 'Not signed in')
      let res
      try {
        res = await send('/api/v1/auth/refresh', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ refresh_token: current.refresh_token }),
        })
      } catch (error) {
        // Offline for now: keep the session and try again shortly.
        schedule(5_000)
        throw error
      }
      if (res.status === 401 || res.status === 422) {
        forget()
        hooks.onSignedOut('Your sign-in has ended. Please sign in again.')
        throw await errorOf(res)
      }
      if (!res.ok) {
        schedule(5_000)
        throw await errorOf(res)
      }
      adopt(await res.json(), current.user)
    })().finally(() => {
      refreshing = null
    })
    return refreshing
  }

  /** An authorised request; answers the parsed JSON body (or null for an empty one). */
  const request = async (path, init = {}) => {
    if (!session) throw new ApiError(401, 'Not signed in')
    if (session.expires_at - Date.now() < 10_000) await refresh()
    const call = () =>
      send(path, {
        ...init,
        headers: { ...(init.headers ?? {}), Authorization: `Bearer ${session?.access_token ?? ''}` },
      })
    let res = await call()
    if (res.status === 401) {
      await refresh()
      res = await call()
    }
    if (!res.ok) throw await errorOf(res)
    const text = await res.text()
    return text ? JSON.parse(text) : null
  }

  return {
    /** @returns {User | null} */
    user: () => session?.user ?? null,

    /** Resumes a stored session's refresh timer (after a reload). */
    resume() {
      if (session) schedule(Math.max(0, session.expires_at - Date.now() - REFRESH_AHEAD_MS))
    },

    /**
     * Signs in; only operators and admins may use the console (a customer's fresh tokens are
     * revoked at once).
     * @returns {Promise<User>}
     */
    async signIn(email, password) {
      const res = await send('/api/v1/auth/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email, password }),
      })
      if (!res.ok) throw await errorOf(res)
      const body = await res.json()
      if (!STAFF.includes(body.user.role)) {
        await send('/api/v1/auth/logout', {
          method: 'POST',
          headers: { Authorization: `Bearer ${body.access_token}` },
        }).catch(() => {})
        throw new ApiError(
          403,
          'This console is for operators and admins; this account is a customer account. Drivers use the driver app.',
          'FORBIDDEN',
        )
      }
      adopt(body, body.user)
      return body.user
    },

    async signOut() {
      const token = session?.access_token
      forget()
      if (token)
        await send('/api/v1/auth/logout', {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}` },
        }).catch(() => {})
    },

    get: (path) => request(path),

    /** Every item of a paginated list (`{data, next_cursor}`), following the cursors. */
    async all(path, limit = 100) {
      const items = []
      let cursor = null
      do {
        const separator = path.includes('?') ? '&' : '?'
        const page = await request(
          `${path}${separator}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        )
        items.push(...page.data)
        cursor = page.next_cursor
      } while (cursor)
      return items
    },
  }
}
