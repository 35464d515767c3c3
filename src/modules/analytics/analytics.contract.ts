// The seam between the analytics rollups (occupancy kept per 15-minute bucket by a job from the
// persisted space history) and what reads them: trends, the dashboard, predictions and the
// backtest. Plain data only.

/** A lot or a zone: the scopes whose occupancy is rolled up and forecast. */
export type Scope = { kind: 'lot' | 'zone'; id: string }

/** Rollup buckets are this long; hourly and daily trends are made of them. */
export const BUCKET_MINUTES = 15

/** The occupancy of a scope over one bucket. */
export type OccupancyPoint = {
  /** The bucket's start (UTC, a multiple of BUCKET_MINUTES). */
  at: Date
  /** Time-weighted mean share of the scope's spaces that counted as occupied (or held), 0..1. */
  occupancy: number
  /** Spaces in the scope during the bucket. */
  total: number
}

export interface OccupancySeriesPort {
  /** The buckets in [from, to), oldest first; buckets without data are left out. */
  series(scope: Scope, from: Date, to: Date): Promise<OccupancyPoint[]>
  /** The share occupied now, from the hot state (Redis counters). */
  current(scope: Scope): Promise<{ at: Date; occupancy: number; total: number }>
}

/** A forecast point: the expected occupancy at `at`. */
export type ForecastPoint = { at: Date; occupancy: number }
