import { MongoBackend } from '@agendajs/mongo-backend'
import { Agenda } from 'agenda'
import type { Logger } from '../shared/logger.ts'
import type { Database } from '../shared/mongo.ts'

// The jobs door: one agenda instance on the platform's database. agenda's lock is a
// findOneAndUpdate, which FerretDB does not make exclusive (DESIGN.md section 5): run one
// scheduler per deployment, and make every job idempotent (running it twice = once).

export type JobDefinition = {
  name: string
  /** agenda interval, e.g. '1 minute' */
  every: string
  run: () => Promise<unknown>
}

export type Scheduler = {
  define(job: JobDefinition): void
  /** Starts the clock (when enabled) once every job is defined. */
  start(): Promise<void>
  /** Runs a job's body now, in this process, and answers what it returned (tests, tools). */
  runNow(name: string): Promise<unknown>
  stop(): Promise<void>
}

export function createScheduler(options: { db: Database; enabled: boolean; logger: Logger }): Scheduler {
  const jobs = new Map<string, JobDefinition>()
  let agenda: Agenda | undefined

  return {
    define(job) {
      if (jobs.has(job.name)) throw new Error(`the job ${job.name} is defined twice`)
      jobs.set(job.name, job)
    },

    async start() {
      if (!options.enabled || agenda) return
      const db = options.db.db
      if (!db) throw new Error('the scheduler needs a connected database')
      agenda = new Agenda({
        backend: new MongoBackend({ mongo: db as never, collection: 'jobs' }),
        processEvery: '10 seconds',
        maxConcurrency: 4,
        defaultLockLifetime: 5 * 60_000,
      })
      for (const job of jobs.values()) {
        agenda.define(job.name, async () => {
          try {
            const result = await job.run()
            options.logger.debug({ job: job.name, result }, 'job done')
          } catch (error) {
            options.logger.warn({ err: error, job: job.name }, 'job failed')
            throw error
          }
        })
      }
      await agenda.start()
      for (const job of jobs.values())
        await agenda.every(job.every, job.name, undefined, { skipImmediate: true })
    },

    async runNow(name) {
      const job = jobs.get(name)
      if (!job) throw new Error(`no job ${name}`)
      return await job.run()
    },

    async stop() {
      const running = agenda
      agenda = undefined
      // Unlocks what is running; every job is idempotent, so the next start finishes it.
      await running?.stop()
    },
  }
}
