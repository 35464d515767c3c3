// A lot's live feed: the Server-Sent Events of GET /api/v1/lots/{id}/feed, read with fetch rather
// than EventSource so that the console decides how to reconnect: with a backoff, resuming after the
// last event id (`?since=`, the server replays what was missed, or answers `reset`), and also when
// the connection went silently dead. The server writes a `: keep-alive` comment every 15 s, which
// EventSource would hide; here any bytes count as a sign of life.

/** No bytes for this long (two keep-alives missed and then some) and the connection is given up. */
const SILENCE_MS = 40_000
const BACKOFF_FIRST_MS = 500
const BACKOFF_MAX_MS = 10_000

/**
 * @typedef {{ type: 'availability' | 'change' | 'reset' | 'caught_up', id: string } & Record<string, unknown>} FeedMessage
 * @typedef {{
 *   onOpen: (resumed: boolean) => void,
 *   onMessage: (message: FeedMessage) => void,
 *   onDown: (reason: string) => void,
 * }} FeedHandlers
 */

/**
 * Follows a lot until `stop()`. `onOpen(resumed)` comes when a connection is up (resumed: it
 * continues after an event id), `onMessage` with each event in order, `onDown` when a connection
 * is lost (a new one is tried by itself).
 * @param {string} lotId
 * @param {FeedHandlers} handlers
 */
export function followLot(lotId, handlers) {
  let stopped = false
  /** @type {string | null} */
  let lastId = null
  /** @type {AbortController | null} */
  let controller = null
  let attempt = 0

  /** A fault of the page's own handling is reported, not taken for a lost connection. */
  const deliver = (data) => {
    try {
      handlers.onMessage(JSON.parse(data))
    } catch (error) {
      console.error('feed message not handled', error)
    }
  }

  const connect = async () => {
    controller = new AbortController()
    const abort = controller
    let watchdog = 0
    const alive = () => {
      clearTimeout(watchdog)
      watchdog = setTimeout(() => abort.abort(new Error('no data from the feed')), SILENCE_MS)
    }
    try {
      alive()
      const resumed = lastId !== null
      const url = `/api/v1/lots/${encodeURIComponent(lotId)}/feed${resumed ? `?since=${lastId}` : ''}`
      const res = await fetch(url, { signal: abort.signal, headers: { Accept: 'text/event-stream' } })
      if (!res.ok || !res.body) throw new Error(`the feed answered ${res.status}`)
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      /** @type {{ event: string, data: string[], id: string | null }} */
      let pending = { event: 'message', data: [], id: null }
      for (;;) {
        const { value, done } = await reader.read()
        if (done) throw new Error('the feed ended')
        alive()
        buffer += value
        let newline = buffer.indexOf('\n')
        while (newline >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, '')
          buffer = buffer.slice(newline + 1)
          newline = buffer.indexOf('\n')
          if (line === '') {
            if (pending.data.length > 0) {
              const event = pending
              pending = { event: 'message', data: [], id: null }
              if (event.event === 'hello') {
                attempt = 0
                handlers.onOpen(resumed)
                continue
              }
              if (event.id) lastId = event.id
              deliver(event.data.join('\n'))
            }
            continue
          }
          if (line.startsWith(':')) continue // keep-alive
          const colon = line.indexOf(':')
          const field = colon < 0 ? line : line.slice(0, colon)
          const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
          if (field === 'event') pending.event = text
          else if (field === 'data') pending.data.push(text)
          else if (field === 'id') pending.id = text
        }
      }
    } finally {
      clearTimeout(watchdog)
    }
  }

  const run = async () => {
    while (!stopped) {
      try {
        await connect()
      } catch (error) {
        if (stopped) break
        handlers.onDown(error instanceof Error ? error.message : String(error))
      }
      if (stopped) break
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt) * (0.8 + Math.random() * 0.4)
      attempt++
      await new Promise((resolve) => setTimeout(resolve, delay))
    }
  }
  void run()

  return {
    /** Forgets the resume point: the next connection starts from a fresh snapshot. */
    restartFromSnapshot() {
      lastId = null
    },
    stop() {
      stopped = true
      controller?.abort()
    },
  }
}
