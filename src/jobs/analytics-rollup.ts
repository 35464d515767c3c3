import type { AnalyticsService } from '../modules/analytics/analytics.service.ts'
import type { JobDefinition } from './scheduler.ts'

/**
 * Every 5 minutes: each lot's new space history into 15-minute occupancy buckets (per lot and per
 * zone), and its day counters into daily rollups (revenue, entries, exits, stays). The only writer
 * of both; every run recomputes from facts and overwrites, so running it twice is running it once.
 */
export function analyticsRollupJob(analytics: AnalyticsService): JobDefinition {
  return { name: 'analytics.rollup', every: '5 minutes', run: () => analytics.runRollup() }
}
