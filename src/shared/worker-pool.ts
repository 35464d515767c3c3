import { availableParallelism } from 'node:os'
import { Piscina } from 'piscina'

export type WorkerPool = Piscina

/**
 * The worker-thread pool for CPU work (sensor batches, fees). Each task names its file in
 * workers/ when it runs. Threads start up front: a first burst should not wait for them.
 */
export function createWorkerPool(threads?: number): WorkerPool {
  const size = threads ?? Math.max(1, availableParallelism() - 1)
  return new Piscina({
    minThreads: size,
    maxThreads: size,
    // Queue rather than refuse: the ingest door bounds what is in flight (the MQTT receive maximum).
    maxQueue: Number.POSITIVE_INFINITY,
    idleTimeout: Number.POSITIVE_INFINITY,
  })
}
