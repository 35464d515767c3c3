import type { FeeTask } from '../../../workers/fee.ts'
import type { WorkerPool } from '../../shared/worker-pool.ts'
import type { FeeQuote, FeeRequest } from '../sessions/operations.contract.ts'

/** The pool task that prices an array of stays (workers/fee-batch.ts). */
export const feeBatchTask = new URL('../../../workers/fee-batch.ts', import.meta.url).href

/** A micro-batch is sent when it holds this many quotes, or at the end of the event-loop turn. */
export const MICRO_BATCH_MAX = 256
/** quoteMany's task size: big enough to pay for a thread hop, small enough to spread over threads. */
export const QUOTE_MANY_CHUNK = 250

/** Instants cross the thread boundary as epoch milliseconds. */
export function toFeeTask(request: FeeRequest): FeeTask {
  return {
    tariff: request.tariff,
    currency: request.currency,
    timeZone: request.timeZone,
    entryAt: request.entryAt.getTime(),
    exitAt: request.exitAt.getTime(),
    lostTicket: request.lostTicket,
    adjustments: request.adjustments,
  }
}

type Waiting = { task: FeeTask; resolve: (quote: FeeQuote) => void; reject: (error: unknown) => void }

export type FeePool = ReturnType<typeof createFeePool>

/**
 * Fees in the worker pool. A task costs a thread hop and two structured clones whatever it
 * carries, so concurrent single quotes are gathered for one event-loop turn (or up to
 * MICRO_BATCH_MAX) and priced in one task.
 */
export function createFeePool(pool: Pick<WorkerPool, 'run'>) {
  let waiting: Waiting[] = []
  let scheduled = false

  const runBatch = (tasks: readonly FeeTask[]) =>
    pool.run(tasks, { filename: feeBatchTask }) as Promise<FeeQuote[]>

  async function settle(batch: Waiting[]): Promise<void> {
    try {
      const quotes = await runBatch(batch.map((entry) => entry.task))
      batch.forEach((entry, i) => {
        const quote = quotes[i]
        if (quote) entry.resolve(quote)
        else entry.reject(new Error('the fee task answered fewer quotes than it was asked'))
      })
    } catch (error) {
      const [only] = batch
      if (batch.length === 1 && only) {
        only.reject(error)
        return
      }
      // One request that cannot be priced fails alone: the others are priced again one by one.
      await Promise.all(batch.map((entry) => settle([entry])))
    }
  }

  function flush(): void {
    if (waiting.length === 0) return
    const batch = waiting
    waiting = []
    void settle(batch)
  }

  return {
    /** One stay, gathered with the other quotes asked in the same event-loop turn. */
    quote(request: FeeRequest): Promise<FeeQuote> {
      return new Promise<FeeQuote>((resolve, reject) => {
        waiting.push({ task: toFeeTask(request), resolve, reject })
        if (waiting.length >= MICRO_BATCH_MAX) flush()
        else if (!scheduled) {
          scheduled = true
          setImmediate(() => {
            scheduled = false
            flush()
          })
        }
      })
    },

    /** Many stays, in tasks of QUOTE_MANY_CHUNK spread over the pool's threads; answers in order. */
    async quoteMany(requests: readonly FeeRequest[]): Promise<FeeQuote[]> {
      const chunks: FeeTask[][] = []
      for (let i = 0; i < requests.length; i += QUOTE_MANY_CHUNK) {
        chunks.push(requests.slice(i, i + QUOTE_MANY_CHUNK).map(toFeeTask))
      }
      return (await Promise.all(chunks.map(runBatch))).flat()
    },

    /** One task per stay: the unbatched baseline of the benchmark. */
    quoteAlone(request: FeeRequest): Promise<FeeQuote> {
      return runBatch([toFeeTask(request)]).then((quotes) => quotes[0] as FeeQuote)
    },
  }
}
