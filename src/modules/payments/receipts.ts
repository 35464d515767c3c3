import type { RedisClient } from '../../shared/redis.ts'
import type { ReceiptNumbers } from './payments.service.ts'

/**
 * `RCP-YYYYMMDD-NNNNNN`: a Redis INCR per UTC day makes them unique across instances. A number
 * taken by a payment that lost its settlement is skipped, so a day's numbers may have gaps.
 */
export function redisReceiptNumbers(redis: RedisClient): ReceiptNumbers {
  return {
    async next(at) {
      const day = at.toISOString().slice(0, 10).replaceAll('-', '')
      const key = `receipts:${day}`
      const [[, n]] = (await redis
        .multi()
        .incr(key)
        .expire(key, 3 * 86_400)
        .exec()) as [[unknown, number]]
      return `RCP-${day}-${String(n).padStart(6, '0')}`
    },
  }
}
