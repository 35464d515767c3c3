import type { Logger } from '../../shared/logger.ts'
import type { RedisClient } from '../../shared/redis.ts'
import { type ChangeEvent, compareIds, type OccupancyState } from './occupancy.state.ts'

/** What a feed listener receives, in order. */
export type FeedMessage =
  | { type: 'change'; id: string; change: ChangeEvent }
  /** Changes after the client's last id were trimmed away: it must re-read the availability. */
  | { type: 'reset'; id: string }

type Listener = (event: ChangeEvent) => void

/**
 * Live feeds per lot. One Redis subscriber per process fans the occupancy step's PUBLISHes out to
 * the connected clients; a client that reconnects with its last id is replayed what it missed
 * from the lot's capped stream first, then goes live, with no gap and no repeat.
 */
export function createFeedHub(deps: { redis: RedisClient; state: OccupancyState; logger: Logger }) {
  const { state } = deps
  const prefix = deps.redis.options.keyPrefix ?? ''
  const channelPrefix = `${prefix}occ:live:`
  const listeners = new Map<string, Set<Listener>>()
  let subscriber: RedisClient | undefined

  const dispatch = (_pattern: string, channel: string, message: string) => {
    const lot = channel.slice(channelPrefix.length)
    const set = listeners.get(lot)
    if (!set || set.size === 0) return
    let event: ChangeEvent
    try {
      event = JSON.parse(message) as ChangeEvent
    } catch {
      return
    }
    for (const listener of set) listener(event)
  }

  const listen = (lotId: string, listener: Listener) => {
    const set = listeners.get(lotId) ?? new Set<Listener>()
    listeners.set(lotId, set)
    set.add(listener)
    return () => {
      set.delete(listener)
      if (set.size === 0) listeners.delete(lotId)
    }
  }

  return {
    async start() {
      // Channels are not prefixed by ioredis: the subscriber names them in full.
      // Its own connection (a subscriber can do nothing else), resubscribed after a reconnect.
      subscriber = deps.redis.duplicate({ keyPrefix: '', lazyConnect: false, enableOfflineQueue: true })
      subscriber.on('error', () => {})
      subscriber.on('pmessage', dispatch)
      await subscriber.psubscribe(`${channelPrefix}*`)
    },

    async stop() {
      subscriber?.disconnect()
      listeners.clear()
    },

    /**
     * Follows a lot from `since` (a feed id the client saw last), or from now. Returns the
     * unsubscribe function. `send` is called in id order.
     */
    async follow(
      lotId: string,
      since: string | null,
      send: (message: FeedMessage) => void,
    ): Promise<() => void> {
      let last = since ?? (await state.feedHead(lotId))
      let buffered: ChangeEvent[] | null = []
      const deliver = (event: ChangeEvent) => {
        if (compareIds(event.id, last) <= 0) return
        last = event.id
        send({ type: 'change', id: event.id, change: event })
      }
      // Listen first, replay second: what arrives during the replay waits in the buffer.
      const unlisten = listen(lotId, (event) => (buffered ? buffered.push(event) : deliver(event)))
      try {
        if (since !== null) {
          if (!(await state.feedCovers(lotId, since))) {
            last = await state.feedHead(lotId)
            send({ type: 'reset', id: last })
          }
          for (;;) {
            const page = await state.feedSince(lotId, last, 500)
            for (const event of page) deliver(event)
            if (page.length < 500) break
          }
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
      let n = 0
      for (const set of listeners.values()) n += set.size
      return n
    },
  }
}

export type FeedHub = ReturnType<typeof createFeedHub>
