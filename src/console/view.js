// Drawing: small DOM helpers and the console's panels. Text goes in as text (never as HTML), so
// nothing the API answers can inject markup.

import { COUNTED, STATES } from './lot.js'

/**
 * An element with attributes (`class`, `data-*`, `aria-*`, properties for the rest) and children.
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...(Node | string | number | null | undefined | false)} children
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue
    if (name === 'class' || name.startsWith('data-') || name.startsWith('aria-') || name === 'role')
      el.setAttribute(name, String(value))
    else el[name] = value
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    el.append(child instanceof Node ? child : String(child))
  }
  return el
}

const stateInfo = new Map(STATES.map((s) => [s.state, s]))
export const labelOf = (state) => stateInfo.get(state)?.label ?? state
export const glyphOf = (state) => stateInfo.get(state)?.glyph ?? '·'
const wordOf = (state) => stateInfo.get(state)?.word ?? state

const typeNames = {
  STANDARD: 'standard',
  COMPACT: 'compact',
  HANDICAPPED: 'accessible',
  EV: 'EV',
  MOTORCYCLE: 'motorcycle',
}
const typeMarks = { COMPACT: 'c', HANDICAPPED: '♿', EV: 'EV', MOTORCYCLE: 'm' }

export function legend() {
  return STATES.map(({ state, label, glyph }) =>
    h('li', {}, h('span', { class: 'swatch', 'data-state': state, 'aria-hidden': 'true' }, glyph), label),
  )
}

/** A space's cell: a button whose name says the number and the state (colour is not the only cue). */
export function spaceCell(space, shown) {
  const cell = h(
    'button',
    {
      type: 'button',
      class: 'space',
      tabIndex: -1,
      'data-space-id': space.id,
      'data-space-number': space.number,
    },
    h('span', { class: 'num' }, space.number),
    h('span', { class: 'glyph', 'aria-hidden': 'true' }, glyphOf(shown)),
    typeMarks[space.type] ? h('span', { class: 'type', 'aria-hidden': 'true' }, typeMarks[space.type]) : null,
  )
  paintCell(cell, space, shown)
  return cell
}

export function paintCell(cell, space, shown) {
  cell.setAttribute('data-state', shown)
  const type = space.type === 'STANDARD' ? '' : `, ${typeNames[space.type] ?? space.type} space`
  const stale = space.device?.stale ? ', sensor stale' : ''
  cell.setAttribute('aria-label', `${space.number} ${wordOf(shown)}${type}${stale}`)
  cell.title = `${space.number}: ${labelOf(shown)}${type}${stale}`
  const glyph = cell.querySelector('.glyph')
  if (glyph) glyph.textContent = glyphOf(shown)
  cell.classList.toggle('stale', Boolean(space.device?.stale))
}

/** Zone counters: one row per zone and a total row. */
export function zoneTable(model) {
  const head = h(
    'tr',
    {},
    h('th', { scope: 'col' }, 'Zone'),
    ...COUNTED.map((k) => h('th', { scope: 'col', 'data-state': k }, labelOf(k))),
    h('th', { scope: 'col' }, 'Total'),
  )
  const rows = []
  for (const { level, zones } of model.layout()) {
    for (const { zone } of zones) {
      const c = model.counts((s) => s.zone_id === zone.id)
      rows.push(
        h(
          'tr',
          { 'data-zone-id': zone.id },
          h('th', { scope: 'row' }, `${level.name} · ${zone.name}`),
          ...COUNTED.map((k) => h('td', { 'data-count': k }, c[k])),
          h('td', { 'data-count': 'total' }, c.total),
        ),
      )
    }
  }
  const all = model.counts()
  const total = h(
    'tr',
    { class: 'total' },
    h('th', { scope: 'row' }, 'Lot'),
    ...COUNTED.map((k) => h('td', {}, all[k])),
    h('td', {}, all.total),
  )
  return h(
    'table',
    { class: 'counts' },
    h('caption', { class: 'sr-only' }, 'Spaces per zone by state'),
    h('thead', {}, head),
    h('tbody', {}, rows, total),
  )
}

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto', style: 'short' })

/** "12 s ago", "3 min ago", "yesterday"; "never" for null. */
export function ago(iso, now = Date.now()) {
  if (!iso) return 'never'
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000)
  const abs = Math.abs(seconds)
  if (abs < 60) return relative.format(seconds, 'second')
  if (abs < 3600) return relative.format(Math.round(seconds / 60), 'minute')
  if (abs < 86_400) return relative.format(Math.round(seconds / 3600), 'hour')
  return relative.format(Math.round(seconds / 86_400), 'day')
}

export function duration(minutes) {
  const h = Math.floor(minutes / 60)
  const m = minutes % 60
  return h > 0 ? `${h} h ${String(m).padStart(2, '0')} min` : `${m} min`
}

/** Minor units in a currency, as the browser's locale writes it. */
export function money(amount, currency) {
  if (amount === null || amount === undefined) return '—'
  const format = new Intl.NumberFormat(undefined, { style: 'currency', currency })
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2
  return format.format(amount / 10 ** digits)
}

/** Times in the lot's own time zone (a parking day is the lot's), in the browser's language. */
export const clock = (iso, timeZone) =>
  new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', timeZone }).format(new Date(iso))
export const when = (iso, timeZone) =>
  new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone }).format(
    new Date(iso),
  )

export const LOW_BATTERY = 20

/** Sensor health: counts, then the sensors with a problem first. */
export function sensorPanel(model, now = Date.now()) {
  const sensors = [...model.spaces.values()]
    .filter((s) => s.device)
    .map((s) => ({ space: s, device: s.device }))
  const low = (d) => d.battery !== null && d.battery < LOW_BATTERY
  const never = (d) => !d.last_seen_at
  const rank = ({ device: d }) => (d.stale ? 0 : never(d) ? 1 : low(d) ? 2 : 3)
  sensors.sort(
    (a, b) => rank(a) - rank(b) || a.space.number.localeCompare(b.space.number, 'en', { numeric: true }),
  )
  const stale = sensors.filter((s) => s.device.stale).length
  const lowCount = sensors.filter((s) => low(s.device)).length
  const neverCount = sensors.filter((s) => never(s.device)).length
  // Every sensor with a problem (up to 50), and a few healthy ones after them.
  const problems = sensors.filter(({ device: d }) => d.stale || never(d) || low(d)).length
  const shown = sensors.slice(0, Math.max(12, Math.min(problems, 50)))
  const summary = h(
    'p',
    { class: 'summary' },
    h('strong', {}, sensors.length),
    ' sensors: ',
    h('span', { class: stale ? 'warn' : '' }, `${stale} stale`),
    ', ',
    h('span', { class: lowCount ? 'warn' : '' }, `${lowCount} low battery`),
    ', ',
    `${neverCount} never heard from`,
  )
  if (sensors.length === 0) return [summary]
  const table = h(
    'table',
    { class: 'sensors' },
    h('caption', { class: 'sr-only' }, 'Sensors, those with a problem first'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Space'),
        h('th', { scope: 'col' }, 'Sensor'),
        h('th', { scope: 'col' }, 'Battery'),
        h('th', { scope: 'col' }, 'Last seen'),
        h('th', { scope: 'col' }, 'State'),
      ),
    ),
    h(
      'tbody',
      {},
      shown.map(({ space, device }) =>
        h(
          'tr',
          { class: device.stale ? 'problem' : low(device) ? 'low' : '', 'data-device-id': device.id },
          h('th', { scope: 'row' }, space.number),
          h('td', {}, device.id),
          h(
            'td',
            { class: low(device) ? 'warn' : '' },
            device.battery === null ? '—' : `${Math.round(device.battery)} %${low(device) ? ' low' : ''}`,
          ),
          h('td', {}, ago(device.last_seen_at, now)),
          h(
            'td',
            {},
            device.stale ? h('span', { class: 'badge bad' }, 'stale') : never(device) ? 'never seen' : 'ok',
          ),
        ),
      ),
    ),
  )
  const more =
    sensors.length > shown.length
      ? h('p', { class: 'muted' }, `and ${sensors.length - shown.length} more`)
      : null
  return [summary, table, more]
}

/** Active sessions with their fee so far. */
export function sessionsPanel(page, model, timeZone, now = Date.now()) {
  const sessions = page.data
  if (sessions.length === 0) return [h('p', { class: 'muted' }, 'No vehicle is parked on a session now.')]
  const more = page.next_cursor ? h('p', { class: 'muted' }, `Showing the first ${sessions.length}.`) : null
  return [
    h(
      'table',
      { class: 'sessions' },
      h('caption', { class: 'sr-only' }, 'Active sessions, oldest first'),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, 'Plate'),
          h('th', { scope: 'col' }, 'Space'),
          h('th', { scope: 'col' }, 'Entered'),
          h('th', { scope: 'col' }, 'Duration'),
          h('th', { scope: 'col', class: 'num' }, 'Fee so far'),
        ),
      ),
      h(
        'tbody',
        {},
        sessions.map((s) => {
          const minutes = Math.max(0, Math.floor((now - new Date(s.entry_time).getTime()) / 60_000))
          const space = s.space_id ? model.spaces.get(s.space_id) : null
          return h(
            'tr',
            { 'data-session-id': s.id },
            h('th', { scope: 'row' }, s.license_plate),
            h('td', {}, space?.number ?? s.space_number ?? '—'),
            h('td', {}, h('time', { dateTime: s.entry_time }, clock(s.entry_time, timeZone))),
            h('td', {}, duration(minutes)),
            h('td', { class: 'num' }, money(s.fee_so_far, s.currency)),
          )
        }),
      ),
    ),
    more,
  ]
}

/** Today's figures: the admin dashboard, or for operators what they may read. */
export function todayPanel(figures) {
  const tiles = figures.tiles.map(([label, value, note]) =>
    h(
      'div',
      { class: 'tile' },
      h('dt', {}, label),
      h('dd', {}, value, note ? h('small', { class: 'note' }, note) : null),
    ),
  )
  return [h('dl', { class: 'tiles' }, tiles), figures.note ? h('p', { class: 'muted' }, figures.note) : null]
}

/** A space's details, for the dialog. */
export function spaceDetails(space, shown, session, timeZone, now = Date.now()) {
  const rows = [
    ['State', labelOf(shown)],
    ['Sensed', space.sensed],
    ['Operator overlay', space.overlay ?? 'none'],
    ['Type', typeNames[space.type] ?? space.type],
    ['Since', `${when(space.changed_at, timeZone)} (${ago(space.changed_at, now)})`],
    ['Sensor', space.device?.id ?? 'none bound'],
  ]
  if (space.device) {
    rows.push(['Battery', space.device.battery === null ? '—' : `${Math.round(space.device.battery)} %`])
    rows.push(['Last seen', ago(space.device.last_seen_at, now)])
    rows.push([
      'Sensor state',
      space.device.stale ? 'stale (silent)' : space.device.last_seen_at ? 'ok' : 'never seen',
    ])
  }
  if (session) {
    rows.push(['Vehicle', session.license_plate])
    rows.push(['Entered', when(session.entry_time, timeZone)])
    rows.push(['Fee so far', money(session.fee_so_far, session.currency)])
  } else if (space.session_id) rows.push(['Parking session', space.session_id])
  return rows.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)])
}
