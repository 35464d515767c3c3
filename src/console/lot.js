// What the console knows of one lot: its levels and zones, each space's live state (a snapshot
// from GET /lots/{id}/spaces/states, then the feed's changes), and which EV spaces charge now.

/** The states a space is shown in, with the letter that says it without colour. */
export const STATES = [
  { state: 'free', label: 'Free', word: 'free', glyph: 'F' },
  { state: 'occupied', label: 'Occupied', word: 'occupied', glyph: 'O' },
  { state: 'charging', label: 'EV charging', word: 'EV charging', glyph: '⚡' },
  { state: 'reserved', label: 'Reserved', word: 'reserved', glyph: 'R' },
  { state: 'maintenance', label: 'Maintenance', word: 'maintenance', glyph: 'M' },
  { state: 'closed', label: 'Closed', word: 'closed', glyph: 'X' },
  { state: 'unknown', label: 'Unknown', word: 'unknown', glyph: '?' },
]

/** The statuses the platform counts (the zone counters' columns). */
export const COUNTED = ['free', 'occupied', 'unknown', 'reserved', 'maintenance', 'closed']

/**
 * @typedef {{ id: string, name: string, floor: number }} Level
 * @typedef {{ id: string, name: string, level_id: string }} Zone
 * @typedef {{ id: string | null, battery: number | null, signal: number | null, last_seen_at: string | null, stale: boolean }} Device
 * @typedef {{
 *   id: string, number: string, type: string, level_id: string, zone_id: string,
 *   status: string, sensed: string, overlay: string | null, session_id: string | null,
 *   changed_at: string, device: Device | null,
 * }} Space
 */

export const byNumber = (a, b) => a.number.localeCompare(b.number, 'en', { numeric: true })

export class LotModel {
  constructor() {
    /** @type {Map<string, Level>} */
    this.levels = new Map()
    /** @type {Map<string, Zone>} */
    this.zones = new Map()
    /** @type {Map<string, Space>} */
    this.spaces = new Map()
    /** Space ids whose EV station runs a charge. @type {Set<string>} */
    this.charging = new Set()
  }

  /** @param {Level[]} levels @param {Zone[]} zones */
  setStructure(levels, zones) {
    this.levels = new Map(levels.map((l) => [l.id, l]))
    this.zones = new Map(zones.map((z) => [z.id, z]))
  }

  /** @param {Record<string, any>[]} rows SpaceLiveState items */
  setSnapshot(rows) {
    this.spaces = new Map(rows.map((row) => [row.space_id, spaceOf(row)]))
  }

  /** Device health only (a periodic re-read), leaving the live states to the feed. */
  setDevices(rows) {
    for (const row of rows) {
      const space = this.spaces.get(row.space_id)
      if (space) space.device = row.device
    }
  }

  /**
   * Applies one feed change; answers what to redraw: the space's id, or 'all' when spaces came,
   * went or moved.
   * @param {Record<string, string>} change
   */
  apply(change) {
    if (change.kind === 'removed') {
      this.spaces.delete(change.space)
      return 'all'
    }
    const known = this.spaces.get(change.space)
    const space = known ?? {
      id: change.space,
      number: change.number,
      type: change.type,
      level_id: change.level,
      zone_id: change.zone,
      device: null,
    }
    Object.assign(space, {
      number: change.number || space.number,
      type: change.type || space.type,
      level_id: change.level || space.level_id,
      zone_id: change.zone || space.zone_id,
      status: change.status_to,
      sensed: change.sensed_to,
      overlay: change.overlay || null,
      session_id: change.session || null,
      changed_at: new Date(Number(change.at) || Date.now()).toISOString(),
    })
    if (change.device && space.device && space.device.id === change.device) {
      space.device.last_seen_at = new Date().toISOString()
      space.device.stale = change.kind === 'stale'
    }
    this.spaces.set(space.id, space)
    return known && change.kind !== 'placed' ? space.id : 'all'
  }

  /** What a space is shown as: its status, or charging while its station charges a car. */
  shownState(space) {
    if (this.charging.has(space.id) && !['maintenance', 'closed', 'reserved'].includes(space.status))
      return 'charging'
    return space.status
  }

  /** Counts by status for the spaces `include` keeps. */
  counts(include = () => true) {
    const counts = Object.fromEntries([...COUNTED, 'total'].map((k) => [k, 0]))
    for (const space of this.spaces.values()) {
      if (!include(space)) continue
      counts.total++
      if (space.status in counts) counts[space.status]++
    }
    return counts
  }

  /** Levels by floor, each with its zones by name and their spaces by number. */
  layout() {
    const levels = [...this.levels.values()].sort((a, b) => a.floor - b.floor || a.name.localeCompare(b.name))
    const spacesOfZone = new Map()
    for (const space of this.spaces.values()) {
      const list = spacesOfZone.get(space.zone_id) ?? []
      list.push(space)
      spacesOfZone.set(space.zone_id, list)
    }
    return levels.map((level) => ({
      level,
      zones: [...this.zones.values()]
        .filter((zone) => zone.level_id === level.id)
        .sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }))
        .map((zone) => ({ zone, spaces: (spacesOfZone.get(zone.id) ?? []).sort(byNumber) })),
    }))
  }

  /** Whether every space's level and zone is known (else the structure is re-read). */
  structureCovers() {
    for (const space of this.spaces.values())
      if (!this.zones.has(space.zone_id) || !this.levels.has(space.level_id)) return false
    return true
  }
}

function spaceOf(row) {
  return {
    id: row.space_id,
    number: row.number,
    type: row.type,
    level_id: row.level_id,
    zone_id: row.zone_id,
    status: row.status,
    sensed: row.sensed,
    overlay: row.overlay,
    session_id: row.session_id,
    changed_at: row.changed_at,
    device: row.device,
  }
}
