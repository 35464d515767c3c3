import { BUCKET_MINUTES } from './analytics.contract.ts'

// The pure part of the occupancy rollup: a lot's space changes (in time order) played over the
// counts each zone had at a checkpoint, integrated over time into 15-minute buckets per zone and
// for the lot. No I/O, so that a test can recompute the same figures from raw history.

export const BUCKET_MS = BUCKET_MINUTES * 60_000

/** A zone's space counts at one instant: all spaces, those occupied (or held), those reserved. */
export type ZoneCounts = { total: number; occupied: number; reserved: number }

/** A space change as the rollup needs it (a space_history row). */
export type RollupChange = {
  zone_id: string
  kind: string
  status_from: string
  status_to: string
  at: Date
}

/** Space-milliseconds integrated over one bucket of one scope. */
export type BucketSums = { space_ms: number; occupied_ms: number; reserved_ms: number }

export type RolledBucket = BucketSums & { scope_kind: 'lot' | 'zone'; scope_id: string; at: Date }

export const floorToBucket = (ms: number): number => Math.floor(ms / BUCKET_MS) * BUCKET_MS

/** A change's effect on its zone's counts; `placed`/`removed` bring a space in or take it out. */
export function applyChange(counts: ZoneCounts, change: RollupChange): void {
  const enters = change.kind !== 'removed'
  const leaves = change.kind !== 'placed'
  if (change.kind === 'placed') counts.total += 1
  if (change.kind === 'removed') counts.total -= 1
  if (leaves) {
    if (change.status_from === 'occupied') counts.occupied -= 1
    if (change.status_from === 'reserved') counts.reserved -= 1
  }
  if (enters) {
    if (change.status_to === 'occupied') counts.occupied += 1
    if (change.status_to === 'reserved') counts.reserved += 1
  }
}

/**
 * Integrates the counts of every scope over [from, to), split into buckets. `changes` are those
 * of the lot with `at` in [from, to), sorted by time. Answers the buckets with any space in them
 * and the zones' counts at `snapshotAt` (from <= snapshotAt <= to) and at `to`.
 */
export function rollUp(input: {
  lotId: string
  from: Date
  to: Date
  start: ReadonlyMap<string, ZoneCounts>
  changes: Iterable<RollupChange>
  snapshotAt?: Date
}): { buckets: RolledBucket[]; atSnapshot: Map<string, ZoneCounts>; atEnd: Map<string, ZoneCounts> } {
  const from = input.from.getTime()
  const to = input.to.getTime()
  const snapshotAt = input.snapshotAt?.getTime() ?? to
  const zones = new Map<string, ZoneCounts>()
  for (const [id, c] of input.start) zones.set(id, { ...c })
  const lot = sum(zones.values())
  const since = new Map<string, number>()
  let lotSince = from
  const sums = new Map<string, BucketSums>()
  let atSnapshot: Map<string, ZoneCounts> | undefined

  const integrate = (key: string, counts: ZoneCounts, start: number, end: number) => {
    if (counts.total <= 0 || end <= start) return
    for (let t = start; t < end; ) {
      const bucket = floorToBucket(t)
      const until = Math.min(end, bucket + BUCKET_MS)
      const span = until - t
      const id = `${key}|${bucket}`
      const s = sums.get(id) ?? { space_ms: 0, occupied_ms: 0, reserved_ms: 0 }
      s.space_ms += counts.total * span
      s.occupied_ms += Math.max(0, counts.occupied) * span
      s.reserved_ms += Math.max(0, counts.reserved) * span
      sums.set(id, s)
      t = until
    }
  }
  const copyZones = () => new Map([...zones].map(([id, c]) => [id, { ...c }]))

  for (const change of input.changes) {
    const at = Math.min(Math.max(change.at.getTime(), from), to)
    if (atSnapshot === undefined && at >= snapshotAt) atSnapshot = copyZones()
    let zone = zones.get(change.zone_id)
    if (!zone) {
      zone = { total: 0, occupied: 0, reserved: 0 }
      zones.set(change.zone_id, zone)
    }
    integrate(`zone:${change.zone_id}`, zone, since.get(change.zone_id) ?? from, at)
    since.set(change.zone_id, at)
    integrate(`lot:${input.lotId}`, lot, lotSince, at)
    lotSince = at
    applyChange(zone, change)
    applyChange(lot, change)
  }
  if (atSnapshot === undefined) atSnapshot = copyZones()
  for (const [id, zone] of zones) integrate(`zone:${id}`, zone, since.get(id) ?? from, to)
  integrate(`lot:${input.lotId}`, lot, lotSince, to)

  const buckets: RolledBucket[] = []
  for (const [id, s] of sums) {
    const [key = '', bucket = '0'] = id.split('|')
    const colon = key.indexOf(':')
    buckets.push({
      scope_kind: key.slice(0, colon) as 'lot' | 'zone',
      scope_id: key.slice(colon + 1),
      at: new Date(Number(bucket)),
      ...s,
    })
  }
  return { buckets, atSnapshot, atEnd: zones }
}

function sum(counts: Iterable<ZoneCounts>): ZoneCounts {
  const total: ZoneCounts = { total: 0, occupied: 0, reserved: 0 }
  for (const c of counts) {
    total.total += c.total
    total.occupied += c.occupied
    total.reserved += c.reserved
  }
  return total
}

/** The rollup document's `_id`: `<scopeKind>:<scopeId>:<bucketStartISO>`. */
export const rollupId = (kind: 'lot' | 'zone', id: string, at: Date): string =>
  `${kind}:${id}:${at.toISOString()}`
