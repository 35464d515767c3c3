// Fee quotes per second, side by side in one run: the pure function inline on the main thread,
// the worker pool with one task per quote, and the pool with batches (the micro-batched quote()
// and quoteMany). No services needed. Absolute numbers drift between runs on small machines;
// compare the ratios.
//
//   npm run bench:fees [-- --count 200000 --seconds 5 --threads 1]

import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createFeePool, toFeeTask } from '../src/modules/pricing/pricing.pool.ts'
import type { FeeQuote, FeeRequest, TariffSnapshot } from '../src/modules/sessions/operations.contract.ts'
import { createWorkerPool } from '../src/shared/worker-pool.ts'
import { quoteFee, type Tariff } from '../workers/fee.ts'

export type FeeBenchRow = {
  mode: string
  quotes: number
  seconds: number
  per_second: number
  /** Against inline on the main thread. */
  ratio: number
  /** The main thread's event-loop delay while the mode ran, p99 in ms. */
  loop_delay_p99_ms: number
}

export type FeeBenchOptions = { count: number; seconds: number; threads?: number | undefined }

/** A realistic plan: hourly with a weekday peak, a night price and a daily cap. */
const tariff: Tariff = {
  id: 'bench',
  name: 'Bench Hourly',
  currency: 'EUR',
  rate_type: 'hourly',
  amount: 350,
  step_minutes: 60,
  grace_period_minutes: 15,
  daily_max: 2400,
  lost_ticket_fee: 3000,
  bands: [
    {
      kind: 'peak',
      name: 'Peak',
      days: ['mon', 'tue', 'wed', 'thu', 'fri'],
      start: '07:30',
      end: '09:30',
      multiplier_percent: 150,
    },
    {
      kind: 'price',
      name: 'Night',
      days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
      start: '22:00',
      end: '06:00',
      step_amount: 100,
    },
  ],
}

/** Stays from minutes to three days, entering all through a year (both DST changes included). */
function stays(count: number): FeeRequest[] {
  const year = Date.parse('2026-01-01T00:00:00Z')
  let seed = 42
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
    return seed / 2 ** 31
  }
  return Array.from({ length: count }, () => {
    const entryAt = new Date(year + Math.floor(random() * 365 * 24 * 60) * 60_000)
    // Most stays are a few hours; one in ten lasts up to three days.
    const minutes = random() < 0.9 ? Math.floor(random() * 8 * 60) : Math.floor(random() * 3 * 24 * 60)
    return {
      tariff: tariff as unknown as TariffSnapshot,
      currency: 'EUR',
      timeZone: 'Europe/Berlin',
      entryAt,
      exitAt: new Date(entryAt.getTime() + minutes * 60_000),
      lostTicket: random() < 0.02,
      adjustments:
        random() < 0.1
          ? [{ kind: 'percentage', value: 20, source: 'discount', ref: 'B20', label: 'B20 (20%)' }]
          : [],
    }
  })
}

type Mode = { mode: string; step: (from: number) => Promise<number> }

/** Rounds in which every mode takes its turn: a busy moment of a shared machine hits all alike. */
const ROUNDS = 3

/**
 * Each mode runs `step` (pricing a slice of the stays from an offset) for its share of `count`
 * quotes or of the time, once per round; quotes and time add up over the rounds.
 */
async function measure(
  modes: readonly Mode[],
  requests: readonly FeeRequest[],
  options: FeeBenchOptions,
): Promise<Omit<FeeBenchRow, 'ratio'>[]> {
  const totals = modes.map(() => ({ quotes: 0, ms: 0, delay: monitorEventLoopDelay({ resolution: 5 }) }))
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, { step }] of modes.entries()) {
      const total = totals[i]
      if (!total) continue
      const share = options.count / ROUNDS
      const deadline = performance.now() + (options.seconds * 1000) / ROUNDS
      const began = performance.now()
      total.delay.enable()
      let done = 0
      while (done < share && performance.now() < deadline) {
        done += await step((total.quotes + done) % requests.length)
      }
      total.delay.disable()
      total.quotes += done
      total.ms += performance.now() - began
    }
  }
  return modes.map(({ mode }, i) => {
    const { quotes, ms, delay } = totals[i] ?? { quotes: 0, ms: 1, delay: undefined }
    return {
      mode,
      quotes,
      seconds: +(ms / 1000).toFixed(2),
      per_second: Math.round(quotes / (ms / 1000)),
      loop_delay_p99_ms: +((delay?.percentile(99) ?? 0) / 1e6).toFixed(1),
    }
  })
}

const slice = (requests: readonly FeeRequest[], from: number, size: number) => {
  const part = requests.slice(from, from + size)
  return part.length === size ? part : [...part, ...requests.slice(0, size - part.length)]
}

export async function runFeeBench(options: FeeBenchOptions): Promise<FeeBenchRow[]> {
  const requests = stays(Math.min(options.count, 50_000))
  const pool = createWorkerPool(options.threads)
  const fees = createFeePool(pool)
  try {
    // Warm-up over every stay, on both sides: JIT, every worker thread started, and each thread's
    // cache of UTC offsets filled, so that no mode pays for what another one ran first.
    for (const request of requests) quoteFee(toFeeTask(request))
    for (let i = 0; i < (options.threads ?? 1) * 2; i++) await fees.quoteMany(requests)
    await Promise.all(requests.slice(0, 500).map((request) => fees.quoteAlone(request)))

    const rows = await measure(
      [
        {
          // In slices of 256 with a turn of the loop between, as a server would price requests.
          mode: 'inline (main thread)',
          step: async (from) => {
            for (const request of slice(requests, from, 256)) quoteFee(toFeeTask(request))
            await new Promise((resolve) => setImmediate(resolve))
            return 256
          },
        },
        {
          // 256 in flight.
          mode: 'pool, one task per quote',
          step: async (from) => {
            await Promise.all(slice(requests, from, 256).map((request) => fees.quoteAlone(request)))
            return 256
          },
        },
        {
          // 1,024 concurrent quote() calls, gathered into tasks of up to 256.
          mode: 'pool, micro-batched quote()',
          step: async (from) => {
            await Promise.all(slice(requests, from, 1_024).map((request) => fees.quote(request)))
            return 1_024
          },
        },
        {
          // 2,000 at a time: tasks of 250.
          mode: 'pool, quoteMany (250 a task)',
          step: async (from) => {
            const quotes: FeeQuote[] = await fees.quoteMany(slice(requests, from, 2_000))
            return quotes.length
          },
        },
      ],
      requests,
      options,
    )
    const inline = rows[0]?.per_second ?? 1
    return rows.map((row) => ({ ...row, ratio: +(row.per_second / inline).toFixed(2) }))
  } finally {
    await pool.destroy()
  }
}

export function formatFeeBench(rows: readonly FeeBenchRow[], threads: number): string {
  const header = ['mode', 'quotes', 's', 'quotes/s', 'vs inline', 'loop p99 ms']
  const lines = rows.map((row) => [
    row.mode,
    String(row.quotes),
    row.seconds.toFixed(2),
    String(row.per_second),
    `${row.ratio.toFixed(2)}x`,
    row.loop_delay_p99_ms.toFixed(1),
  ])
  const widths = header.map((_, i) =>
    Math.max(header[i]?.length ?? 0, ...lines.map((line) => line[i]?.length ?? 0)),
  )
  const render = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')
  return [
    `fee quotes per second, ${threads} worker thread(s), ${ROUNDS} rounds of every mode; hourly plan with a peak, a night price and a daily cap, Europe/Berlin`,
    render(header),
    ...lines.map(render),
  ].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '200000' },
      seconds: { type: 'string', default: '5' },
      threads: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  })
  const count = Math.min(Math.max(1_000, Number(values.count) || 200_000), 1_000_000)
  const seconds = Math.min(Math.max(1, Number(values.seconds) || 5), 60)
  const threads = values.threads === undefined ? undefined : Math.max(1, Number(values.threads) || 1)
  const rows = await runFeeBench({ count, seconds, threads })
  if (values.json) console.log(JSON.stringify(rows, null, 2))
  else {
    const { availableParallelism } = await import('node:os')
    console.log(formatFeeBench(rows, threads ?? Math.max(1, availableParallelism() - 1)))
  }
}
