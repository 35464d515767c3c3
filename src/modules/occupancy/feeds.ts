import type { Logger } from '../../shared/logger.ts'
import type { RedisClient } from '../../shared/redis.ts'
import { type ChangeEvent, compareIds, type OccupancyState } from './occupancy.state.ts'

/** What a feed listener receives, in order. */
export type FeedMessage =
  | { type: 'change'; id: string; change: ChangeEvent }
  /** Changes after the client's last id were trimmed away: it must re-read the availability. */
  | { type: 'reset'; id: string }

type Listener = (event: ChangeEvent) => void

const PAGE = 1_000

/**
 * Live feeds per lot. The occupancy step publishes one notice per call that added changes; while
 * anyone listens, one reader per process then reads the change stream onward and hands each change
 * to the listeners of its lot. A client that reconnects with its last id is replayed what it
 * missed from the stream first, then goes live, with no gap and no repeat.
 */
export function createFeedHub(deps: { redis: RedisClient; state: OccupancyState; logger: Logger }) {
  const { state, logger } = deps
  const channel = `${deps.redis.options.keyPrefix ?? ''}occ:changed`
  const listeners = new Map<string, Set<Listener>>()
  let subscriber: RedisClient | undefined
  let listening = 0
  /** The last change handed out, while anyone listens. */
  let position: string | undefined
  let pumping = false
  let again = false

  const pump = async () => {
    if (pumping) {
      again = true
      return
    }
    pumping = true
    try {
      do {
        again = false
        for (;;) {
          if (listening === 0 || position === undefined) break
          const page = await state.changesSince(position, PAGE)
          for (const event of page) {
            position = event.id
            const set = listeners.get(event.lot)
            if (set) for (const listener of set) listener(event)
          }
          if (page.length < PAGE) break
        }
      } while (again)
    } catch (error) {
      logger.warn({ reason: (error as Error).message }, 'live feed read failed; next notice retries')
    } finally {
      pumping = false
    }
  }

  const listen = async (lotId: string, listener: Listener) => {
    const set = listeners.get(lotId) ?? new Set<Listener>()
    listeners.set(lotId, set)
    set.add(listener)
    if (listening++ === 0) position = await state.feedHead()
    return () => {
      if (!set.delete(listener)) return
      if (set.size === 0) listeners.delete(lotId)
      if (--listening === 0) position = undefined
    }
  }

  return {
    async start() {
      // Its own connection (a subscriber can do nothing else), resubscribed after a reconnect.
      subscriber = deps.redis.duplicate({ keyPrefix: '', lazyConnect: false, enableOfflineQueue: true })
      subscriber.on('error', () => {})
      subscriber.on('message', () => void pump())
      await subscriber.subscribe(channel)
    },

    async stop() {
      subscriber?.disconnect()
      listeners.clear()
      listening = 0
    },

    /**
     * Follows a lot from `since` (a change id the client saw last). Returns the unsubscribe
     * function. `send` is called in id order.
     */
    async follow(
      lotId: string,
      since: string,
      send: (message: FeedMessage) => void,
      /** The position came from our own snapshot, not from a client: nothing can be missing. */
      fromSnapshot = false,
    ): Promise<() => void> {
      let last = since
      let buffered: ChangeEvent[] | null = []
      const deliver = (event: ChangeEvent) => {
        if (compareIds(event.id, last) <= 0) return
        last = event.id
        send({ type: 'change', id: event.id, change: event })
      }
      // Listen first, replay second: what arrives during the replay waits in the buffer.
      const unlisten = await listen(lotId, (event) => (buffered ? buffered.push(event) : deliver(event)))
      try {
        if (!fromSnapshot && !(await state.feedCovers(since))) {
          last = await state.feedHead()
          send({ type: 'reset', id: last })
        }
        for (let cursor = last; ; ) {
          const page = await state.changesSince(cursor, PAGE)
          for (const event of page) if (event.lot === lotId) deliver(event)
          cursor = page.at(-1)?.id ?? cursor
          if (page.length < PAGE) break
        }
        const pending = buffered
        buffered = null
        for (const event of pending) deliver(event)
      } catch (error) {
        unlisten()
        throw error
      }
      return unlisten
    },

    /** Connected listeners, for the metrics. */
    listenerCount(): number {
      return listening
    },
  }
}

export type FeedHub = ReturnType<typeof createFeedHub>
