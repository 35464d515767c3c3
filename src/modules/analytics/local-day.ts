// Calendar days in a facility's IANA time zone: "today" on the dashboard and daily rollups are
// days there, 23 or 25 hours long across a daylight-saving change.

const formats = new Map<string, Intl.DateTimeFormat>()

function formatOf(timeZone: string): Intl.DateTimeFormat {
  let format = formats.get(timeZone)
  if (!format) {
    format = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    })
    formats.set(timeZone, format)
  }
  return format
}

function partsOf(at: Date, timeZone: string): Record<string, number> {
  const parts: Record<string, number> = {}
  for (const p of formatOf(timeZone).formatToParts(at))
    if (p.type !== 'literal') parts[p.type] = Number(p.value)
  return parts
}

/** The zone's offset from UTC at `at`, in milliseconds (Berlin in summer: +2 h). */
function offsetMs(at: Date, timeZone: string): number {
  const p = partsOf(at, timeZone)
  const asUtc = Date.UTC(
    p.year ?? 0,
    (p.month ?? 1) - 1,
    p.day ?? 1,
    p.hour ?? 0,
    p.minute ?? 0,
    p.second ?? 0,
  )
  return asUtc - Math.floor(at.getTime() / 1000) * 1000
}

/** The local date (YYYY-MM-DD) of an instant in a time zone. */
export function localDate(at: Date, timeZone: string): string {
  const p = partsOf(at, timeZone)
  return `${String(p.year).padStart(4, '0')}-${String(p.month).padStart(2, '0')}-${String(p.day).padStart(2, '0')}`
}

const MAX_GAP_MS = 4 * 3600_000

/** The instant a local date starts at in a time zone (its local midnight, or the first instant after it). */
export function startOfDay(date: string, timeZone: string): Date {
  const [y = 0, m = 1, d = 1] = date.split('-').map(Number)
  const midnight = Date.UTC(y, m - 1, d)
  let guess = midnight - offsetMs(new Date(midnight), timeZone)
  // The offset at the guess may differ (a change near midnight): settle on it.
  guess = midnight - offsetMs(new Date(guess), timeZone)
  // Where daylight saving starts at midnight (America/Santiago, America/Havana) the local midnight
  // does not exist and the guess lands in the day before: the day starts at the change, the first
  // whole second after the guess whose local date is `date` (searched within a few hours).
  if (localDate(new Date(guess), timeZone) < date) {
    let before = Math.floor(guess / 1000)
    let after = Math.ceil((guess + MAX_GAP_MS) / 1000)
    if (localDate(new Date(after * 1000), timeZone) < date) return new Date(guess)
    while (after - before > 1) {
      const mid = Math.floor((before + after) / 2)
      if (localDate(new Date(mid * 1000), timeZone) < date) before = mid
      else after = mid
    }
    guess = after * 1000
  }
  return new Date(guess)
}

/** The next calendar date after `date`. */
export function nextDate(date: string): string {
  const [y = 0, m = 1, d = 1] = date.split('-').map(Number)
  return new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10)
}

/** The day `date` in a time zone as the instants [start, end). */
export function dayBounds(date: string, timeZone: string): { start: Date; end: Date } {
  return { start: startOfDay(date, timeZone), end: startOfDay(nextDate(date), timeZone) }
}

/** The local dates from `from` to `to`, both included (at most `max`). */
export function datesBetween(from: string, to: string, max = 400): string[] {
  const dates: string[] = []
  for (let d = from; d <= to && dates.length < max; d = nextDate(d)) dates.push(d)
  return dates
}
