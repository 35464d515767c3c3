import { MongoBackend } from '@agendajs/mongo-backend'
import { Agenda } from 'agenda'
import type { Logger } from '../shared/logger.ts'
import type { Database } from '../shared/mongo.ts'

// The jobs door: one agenda instance on the platform's database. agenda's lock is a
// findOneAndUpdate, which FerretDB does not make exclusive (DESIGN.md section 5): run one
// scheduler per deployment, and make every job idempotent (running it twice = once).

export type JobDefinition = {
  name: string
  /** agenda interval, e.g. '1 minute'; absent: run on demand only (`enqueue`, `runNow`). */
  every?: string | undefined
  /** One line for the admins' list of jobs. */
  description?: string | undefined
  /** `data` is what `enqueue` was given; scheduled runs get none. */
  run: (data?: unknown) => Promise<unknown>
}

/** A job as admins see it: its definition and its runs, from agenda's `jobs` collection. */
export type JobStatus = {
  name: string
  description: string | null
  schedule: string | null
  last_run_at: Date | null
  last_finished_at: Date | null
  next_run_at: Date | null
  fail_count: number
  last_failure: { at: Date | null; reason: string } | null
  running: boolean
  /** The last run started by hand (POST /jobs/{name}/run) or in-process with the clock off. */
  last_manual_run: { started_at: Date; finished_at: Date | null; error: string | null } | null
}

export type Scheduler = {
  define(job: JobDefinition): void
  /** Starts the clock (when enabled) once every job is defined. */
  start(): Promise<void>
  /** Runs a job's body now, in this process, and answers what it returned (tests, tools). */
  runNow(name: string, data?: unknown): Promise<unknown>
  /**
   * Queues one run of a job with its data (agenda `now`). With the clock off (JOBS_ENABLED
   * false) the job runs in this process in the background instead; `stop()` waits for it.
   */
  enqueue(name: string, data: unknown): Promise<void>
  /** Every defined job with its schedule and runs, by name. */
  list(): Promise<JobStatus[]>
  has(name: string): boolean
  /** Resolves once the background runs started by `enqueue` (clock off) have ended. */
  idle(): Promise<void>
  stop(): Promise<void>
}

type AgendaJobDoc = {
  name: string
  type?: string
  repeatInterval?: string
  nextRunAt?: Date | null
  lastRunAt?: Date
  lastFinishedAt?: Date
  lockedAt?: Date | null
  failCount?: number
  failReason?: string
  failedAt?: Date
}

/** How long stop() waits for the runs at work to end. */
const STOP_WAIT_MS = 10_000

type ManualRunDoc = { _id: string; started_at: Date; finished_at: Date | null; error: string | null }

export function createScheduler(options: { db: Database; enabled: boolean; logger: Logger }): Scheduler {
  const jobs = new Map<string, JobDefinition>()
  const background = new Set<Promise<unknown>>()
  let agenda: Agenda | undefined
  let stopped = false

  const collection = <T extends object>(name: string) => {
    const db = options.db.db
    if (!db) throw new Error('the scheduler needs a connected database')
    return db.collection<T>(name)
  }
  const jobOf = (name: string) => {
    const job = jobs.get(name)
    if (!job) throw new Error(`no job ${name}`)
    return job
  }

  /** A run started here, recorded for the admins' view (last writer wins: it is a display). */
  async function runHere(job: JobDefinition, data: unknown) {
    const runs = collection<ManualRunDoc>('job_manual_runs')
    const started_at = new Date()
    // Best effort: two runs at once may race on the upsert, and the view must never fail a run.
    await runs
      .replaceOne({ _id: job.name }, { started_at, finished_at: null, error: null }, { upsert: true })
      .catch(() => {})
    try {
      const result = await job.run(data)
      await runs.updateOne({ _id: job.name }, { $set: { finished_at: new Date() } }).catch(() => {})
      return result
    } catch (error) {
      await runs
        .updateOne({ _id: job.name }, { $set: { finished_at: new Date(), error: (error as Error).message } })
        .catch(() => {})
      throw error
    }
  }

  return {
    define(job) {
      if (jobs.has(job.name)) throw new Error(`the job ${job.name} is defined twice`)
      jobs.set(job.name, job)
    },

    has: (name) => jobs.has(name),

    async start() {
      // Startable again after stop() (a restart in one process: tests, tools).
      stopped = false
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
        agenda.define(
          job.name,
          async (agendaJob) => {
            try {
              const result = await job.run(agendaJob.attrs.data ?? undefined)
              options.logger.debug({ job: job.name, result }, 'job done')
            } catch (error) {
              options.logger.warn({ err: error, job: job.name }, 'job failed')
              throw error
            }
          },
          // Runs on demand leave nothing behind once done; a failed one stays for the admins' view.
          job.every ? {} : { removeOnComplete: true },
        )
      }
      await agenda.start()
      const stored = collection<AgendaJobDoc>('jobs')
      for (const job of jobs.values()) {
        if (!job.every) continue
        // every() computes nextRunAt = now + interval and overwrites the stored one: a restart
        // would push a daily job back a day each time (a deployment restarting daily would never
        // run it). A schedule already stored with this interval is kept, even one in the past
        // (missed while down: it runs now, and every job is idempotent).
        const existing = await stored.findOne({ name: job.name, type: 'single' })
        if (existing?.repeatInterval === job.every && existing.nextRunAt) continue
        await agenda.every(job.every, job.name, undefined, { skipImmediate: true })
      }
    },

    async runNow(name, data) {
      return await runHere(jobOf(name), data)
    },

    async enqueue(name, data) {
      const job = jobOf(name)
      if (agenda) {
        await agenda.now(name, data)
        return
      }
      if (stopped) throw new Error('the scheduler is stopped')
      const run = runHere(job, data)
        .catch((error: unknown) => options.logger.warn({ err: error, job: name }, 'job failed'))
        .finally(() => background.delete(run))
      background.add(run)
    },

    async list() {
      const agendaJobs = collection<AgendaJobDoc>('jobs')
      const manual = collection<ManualRunDoc>('job_manual_runs')
      return await Promise.all(
        [...jobs.values()]
          .sort((a, b) => a.name.localeCompare(b.name))
          .map(async (job): Promise<JobStatus> => {
            // A recurring job has one document; a job run on demand has one per queued run.
            const [doc, run] = await Promise.all([
              agendaJobs.find({ name: job.name }).sort({ lastRunAt: -1 }).limit(1).next(),
              manual.findOne({ _id: job.name }),
            ])
            return {
              name: job.name,
              description: job.description ?? null,
              schedule: job.every ? `every ${job.every}` : null,
              last_run_at: doc?.lastRunAt ?? null,
              last_finished_at: doc?.lastFinishedAt ?? null,
              next_run_at: doc?.nextRunAt ?? null,
              fail_count: doc?.failCount ?? 0,
              last_failure: doc?.failReason ? { at: doc.failedAt ?? null, reason: doc.failReason } : null,
              running: Boolean(doc?.lockedAt),
              last_manual_run: run
                ? { started_at: run.started_at, finished_at: run.finished_at, error: run.error }
                : null,
            }
          }),
      )
    },

    async idle() {
      while (background.size > 0) await Promise.allSettled([...background])
    },

    async stop() {
      stopped = true
      const running = agenda
      agenda = undefined
      if (running) {
        // Takes no new run and waits (bounded) for those at work, so that a deployment does not
        // cut every run it stops in the middle.
        const drained = await running.drain({ timeout: STOP_WAIT_MS, closeConnection: false })
        if (drained.timedOut) {
          options.logger.warn(
            { running: drained.running },
            'jobs still running at stop; the next start redoes them',
          )
        }
        // Unlocks what is left locked (runs queued behind those, or still at work): one scheduler
        // per deployment, so those locks are this one's; every job is idempotent, so the next
        // start finishes them instead of waiting out the lock's lifetime.
        await collection<AgendaJobDoc>('jobs')
          .updateMany(
            { name: { $in: [...jobs.keys()] }, lockedAt: { $ne: null } },
            { $unset: { lockedAt: true } },
          )
          .catch((error: unknown) => options.logger.warn({ err: error }, 'jobs not unlocked at stop'))
      }
      await this.idle()
    },
  }
}
