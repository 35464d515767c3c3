import type { ExportsService } from '../modules/exports/exports.service.ts'
import { EXPORT_RUN_JOB } from '../modules/exports/exports.service.ts'
import type { JobDefinition } from './scheduler.ts'

/**
 * On demand (queued by POST /exports/parking-history): makes one export. The insert of
 * `export_runs/<id>` decides who runs it, so a run queued twice, or met by the sweep, runs once.
 * Run by hand without data, it does what the sweep does.
 */
export function exportsRunJob(exports: ExportsService): JobDefinition {
  return {
    name: EXPORT_RUN_JOB,
    description: 'Makes one CSV export of parking history (queued by its request)',
    run: async (data) => {
      const id = (data as { export_id?: unknown } | undefined)?.export_id
      return typeof id === 'string' ? await exports.run(id) : await exports.sweep()
    },
  }
}

/** Every minute: queued exports left behind are run, dead runs failed, failed e-mails sent again. */
export function exportsSweepJob(exports: ExportsService): JobDefinition {
  return {
    name: 'exports.sweep',
    every: '1 minute',
    description: 'Runs queued exports left behind, fails dead runs, retries ready e-mails',
    run: () => exports.sweep(),
  }
}
