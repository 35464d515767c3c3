import { DependencyDown } from './errors.ts'

/** Rejects when `promise` takes longer than `ms`; for health probes that must answer quickly. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DependencyDown(`${what} timed out after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Calls `attempt` until it succeeds or the deadline passes; for connecting at start-up. */
export async function retryUntil<T>(
  attempt: () => Promise<T>,
  options: { deadlineMs: number; intervalMs?: number; onRetry?: (error: unknown) => void },
): Promise<T> {
  const deadline = Date.now() + options.deadlineMs
  for (;;) {
    try {
      return await attempt()
    } catch (error) {
      if (Date.now() >= deadline) throw error
      options.onRetry?.(error)
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 500))
    }
  }
}
