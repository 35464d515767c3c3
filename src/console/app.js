// The operator console: sign in, pick a lot, watch it live. Plain ES modules served as they are.

import { createApi } from './api.js'
import { followLot } from './feed.js'
import { LotModel } from './lot.js'
import * as view from './view.js'

const { h } = view
const LOT_KEY = 'smart-parking.console.lot'
const PANEL_REFRESH_MS = 30_000
const EV_REFRESH_MS = 15_000
const CLOCK_MS = 15_000
const RECOVERED_SHOWN_MS = 6_000
/**
 * After a reconnection the feed says `caught_up` once it has sent what was missed. Should that not
 * come (a platform that does not send it), the banner goes back to "Live" after this long, without
 * claiming to be caught up.
 */
const CAUGHT_UP_CAP_MS = 10_000
/**
 * Changes kept while the lot is being read. Beyond this (the reads keep failing on a busy lot)
 * they are dropped and the lot is read again from the start, which includes them.
 */
const MAX_BUFFERED = 10_000

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id))
const input = (id) => /** @type {HTMLInputElement} */ ($(id))

const api = createApi({
  onSignedOut: (reason) => {
    closeLot()
    showSignIn(reason)
  },
})

/** @type {{ id: string, name: string, time_zone: string }[]} */
let lots = []

/**
 * The lot being watched.
 * @typedef {{
 *   lot: { id: string, name: string, time_zone: string }, model: LotModel, feed: ReturnType<typeof followLot> | null,
 *   timers: number[], closed: boolean, down: boolean, recovering: boolean,
 *   syncing: Promise<void> | null, again: boolean, buffer: Record<string, string>[], loaded: boolean,
 *   cells: Map<string, HTMLElement>, sessions: { data: any[], next_cursor: string | null } | null,
 *   dashboard: any, capTimer: number, recoveredTimer: number, drawTimer: number,
 * }} Watch
 */
/** @type {Watch | null} */
let watch = null

// Connection banner

const connectionTexts = {
  connecting: 'Connecting to the live feed…',
  live: 'Live',
  lost: 'Connection lost — reconnecting…',
  recovered: 'Reconnected, caught up',
}

/** @param {'idle' | keyof typeof connectionTexts} state */
function setConnection(state) {
  const banner = $('connection')
  banner.hidden = state === 'idle'
  banner.dataset.state = state
  banner.textContent = state === 'idle' ? '' : connectionTexts[state]
}

// Signing in and out

function showSignIn(message = '') {
  for (const id of ['console', 'no-lot', 'lot-picker', 'who']) $(id).hidden = true
  setConnection('idle')
  $('sign-in').hidden = false
  $('sign-in-error').textContent = message
  input('email').focus()
}

$('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const email = input('email').value.trim()
  const password = input('password').value
  const error = $('sign-in-error')
  if (!email || !password) {
    error.textContent = 'Enter your e-mail address and your password.'
    return
  }
  const button = /** @type {HTMLButtonElement} */ ($('sign-in-form').querySelector('button'))
  button.disabled = true
  error.textContent = ''
  try {
    await api.signIn(email, password)
    input('password').value = ''
    await start()
  } catch (e) {
    error.textContent =
      e.status === 401 ? 'Wrong e-mail address or password.' : e.message || 'Signing in failed.'
  } finally {
    button.disabled = false
  }
})

$('sign-out').addEventListener('click', async () => {
  closeLot()
  await api.signOut()
  showSignIn('You are signed out.')
})

async function start() {
  const user = api.user()
  if (!user) return showSignIn()
  $('sign-in').hidden = true
  $('who').hidden = false
  $('who-name').textContent = `${user.full_name} (${user.role})`
  try {
    lots = await api.all('/api/v1/lots')
  } catch (error) {
    return showNoLot(`The lots could not be read: ${error.message}. Reload the page to try again.`)
  }
  const select = /** @type {HTMLSelectElement} */ ($('lot-select'))
  select.replaceChildren(
    h('option', { value: '' }, 'Choose a lot…'),
    ...lots.map((lot) => h('option', { value: lot.id }, lot.name)),
  )
  $('lot-picker').hidden = false
  const remembered = localStorage.getItem(LOT_KEY)
  const initial = lots.find((lot) => lot.id === remembered) ?? (lots.length === 1 ? lots[0] : undefined)
  if (initial) {
    select.value = initial.id
    openLot(initial)
  } else
    showNoLot(
      lots.length === 0
        ? 'There is no lot yet: an admin creates lots (`npm run demo` makes a demo garage).'
        : 'Pick a lot in the list at the top to watch it live.',
    )
}

function showNoLot(text) {
  $('console').hidden = true
  $('no-lot').hidden = false
  $('no-lot-text').textContent = text
}

$('lot-select').addEventListener('change', () => {
  const id = /** @type {HTMLSelectElement} */ ($('lot-select')).value
  const lot = lots.find((l) => l.id === id)
  closeLot()
  setConnection('idle')
  if (!lot) {
    localStorage.removeItem(LOT_KEY)
    return showNoLot('Pick a lot in the list at the top to watch it live.')
  }
  localStorage.setItem(LOT_KEY, lot.id)
  openLot(lot)
})

// Watching a lot

function openLot(lot) {
  /** @type {Watch} */
  const w = {
    lot,
    model: new LotModel(),
    feed: null,
    timers: [],
    closed: false,
    down: false,
    recovering: false,
    syncing: null,
    again: false,
    buffer: [],
    loaded: false,
    cells: new Map(),
    sessions: null,
    dashboard: null,
    capTimer: 0,
    recoveredTimer: 0,
    drawTimer: 0,
  }
  watch = w
  $('no-lot').hidden = true
  $('console').hidden = false
  $('map-title').textContent = lot.name
  $('map-summary').textContent = ''
  $('levels').replaceChildren(h('p', { class: 'muted' }, 'Loading the lot…'))
  for (const id of ['today', 'zone-counts', 'sessions', 'sensors']) $(id).replaceChildren()
  setConnection('connecting')
  // The feed first: changes after its snapshot position wait in the buffer while the states are read.
  w.feed = followLot(lot.id, {
    onOpen: () => feedOpened(w),
    onMessage: (message) => feedMessage(w, message),
    onDown: () => feedDown(w),
  })
  w.timers.push(
    setInterval(() => refreshPanels(w), PANEL_REFRESH_MS),
    setInterval(() => refreshCharging(w), EV_REFRESH_MS),
    setInterval(() => drawClocks(w), CLOCK_MS),
  )
  void refreshPanels(w)
}

function closeLot() {
  if (!watch) return
  const w = watch
  watch = null
  w.closed = true
  w.feed?.stop()
  for (const timer of w.timers) clearInterval(timer)
  clearTimeout(w.capTimer)
  clearTimeout(w.recoveredTimer)
  clearTimeout(w.drawTimer)
}

/** @param {Watch} w */
function feedOpened(w) {
  if (w.closed) return
  if (!w.down) return setConnection('live')
  // A reconnection: the missed changes (or a reset) come first, then the feed's `caught_up`.
  w.down = false
  w.recovering = true
  clearTimeout(w.recoveredTimer)
  clearTimeout(w.capTimer)
  w.capTimer = setTimeout(() => {
    if (w.closed || w.down || !w.recovering) return
    w.recovering = false
    setConnection('live')
  }, CAUGHT_UP_CAP_MS)
  void refreshPanels(w)
  void refreshCharging(w)
}

/** @param {Watch} w */
function feedDown(w) {
  if (w.closed) return
  w.down = true
  w.recovering = false
  clearTimeout(w.capTimer)
  clearTimeout(w.recoveredTimer)
  setConnection('lost')
}

/**
 * The feed has sent everything missed while away: caught up, once a re-read it asked for (after a
 * `reset`) is drawn too.
 * @param {Watch} w
 */
async function caughtUp(w) {
  if (!w.recovering) return
  if (w.syncing) await w.syncing
  if (w.closed || w.down || !w.recovering) return
  w.recovering = false
  clearTimeout(w.capTimer)
  setConnection('recovered')
  w.recoveredTimer = setTimeout(() => {
    if (!w.closed && !w.down) setConnection('live')
  }, RECOVERED_SHOWN_MS)
}

/** @param {Watch} w @param {any} message */
function feedMessage(w, message) {
  if (w.closed) return
  // `availability` opens a fresh connection, `reset` says changes were trimmed: read everything.
  if (message.type === 'availability' || message.type === 'reset') void resync(w)
  else if (message.type === 'caught_up') void caughtUp(w)
  else if (message.type === 'change') {
    if (!w.syncing && w.loaded) applyChange(w, message.change)
    else if (w.buffer.length < MAX_BUFFERED) w.buffer.push(message.change)
    else {
      // The read under way may predate what is dropped: read again, after it.
      w.buffer = []
      void resync(w)
    }
  }
}

/**
 * Reads the lot's structure and every space's state, then applies the changes that arrived
 * meanwhile (they are newer than the feed position the read started after).
 * @param {Watch} w
 */
function resync(w) {
  if (w.syncing) {
    w.again = true
    return w.syncing
  }
  w.syncing = (async () => {
    do {
      w.again = false
      try {
        const id = encodeURIComponent(w.lot.id)
        const [levels, zones, rows, stations] = await Promise.all([
          api.all(`/api/v1/levels?lot_id=${id}`),
          api.all(`/api/v1/zones?lot_id=${id}`),
          api.all(`/api/v1/lots/${id}/spaces/states`, 500),
          api.all(`/api/v1/ev-stations?lot_id=${id}`).catch(() => null),
        ])
        if (w.closed) return
        w.model.setStructure(levels, zones)
        w.model.setSnapshot(rows)
        if (stations) w.model.charging = chargingSpaces(stations)
      } catch (error) {
        if (w.closed) return
        $('levels').replaceChildren(
          h('p', { class: 'error', role: 'alert' }, `The lot could not be read: ${error.message}. Retrying…`),
        )
        await new Promise((resolve) => setTimeout(resolve, 3_000))
        w.again = !w.closed
      }
    } while (w.again && !w.closed)
    if (w.closed) return
    // In one synchronous step, so that no change slips between the buffer and the live path.
    const buffered = w.buffer
    w.buffer = []
    for (const change of buffered) w.model.apply(change)
    w.loaded = true
    w.syncing = null
    drawAll(w)
  })()
  return w.syncing
}

/** @param {Watch} w @param {Record<string, string>} change */
function applyChange(w, change) {
  const target = w.model.apply(change)
  if (!w.model.structureCovers()) return void resync(w) // a level or zone made since the read
  const cell = target === 'all' ? undefined : w.cells.get(target)
  const space = w.model.spaces.get(change.space)
  if (cell && space) view.paintCell(cell, space, w.model.shownState(space))
  else drawMap(w)
  scheduleDraw(w)
}

/** Counters and summaries follow a burst of changes once, shortly after. */
function scheduleDraw(w) {
  if (w.drawTimer) return
  w.drawTimer = setTimeout(() => {
    w.drawTimer = 0
    if (w.closed) return
    drawCounts(w)
    drawToday(w)
  }, 100)
}

/** @param {{ space_id: string, status: string }[]} stations */
const chargingSpaces = (stations) =>
  new Set(stations.filter((s) => s.status === 'charging').map((s) => s.space_id))

// Drawing

function drawAll(w) {
  drawMap(w)
  drawCounts(w)
  drawSensors(w)
  drawSessions(w)
  drawToday(w)
}

/** @param {Watch} w */
function drawMap(w) {
  const focused = /** @type {HTMLElement | null} */ (document.activeElement)?.dataset?.spaceId
  const layout = w.model.layout()
  w.cells = new Map()
  const sections = layout.map(({ level, zones }) =>
    h(
      'section',
      { class: 'level', 'aria-labelledby': `level-${level.id}` },
      h('h3', { id: `level-${level.id}` }, level.name, h('small', {}, ` floor ${level.floor}`)),
      zones.map(({ zone, spaces }) => {
        const cells = spaces.map((space) => {
          const cell = view.spaceCell(space, w.model.shownState(space))
          w.cells.set(space.id, cell)
          return cell
        })
        const active = cells.find((c) => c.dataset.spaceId === focused) ?? cells[0]
        if (active) active.tabIndex = 0
        return h(
          'div',
          { class: 'zone' },
          h('h4', {}, zone.name, h('span', { class: 'muted', 'data-zone-summary': zone.id })),
          cells.length
            ? h('div', { class: 'grid', role: 'group', 'aria-label': `${level.name}, ${zone.name}` }, cells)
            : h('p', { class: 'muted' }, 'No spaces in this zone.'),
        )
      }),
    ),
  )
  $('levels').replaceChildren(
    ...(sections.length ? sections : [h('p', { class: 'muted' }, 'This lot has no levels yet.')]),
  )
  if (focused) w.cells.get(focused)?.focus()
}

/** @param {Watch} w */
function drawCounts(w) {
  $('zone-counts').replaceChildren(view.zoneTable(w.model))
  const all = w.model.counts()
  $('map-summary').textContent = `${all.total} spaces · ${all.free} free · ${all.occupied} occupied`
  for (const el of $('levels').querySelectorAll('[data-zone-summary]')) {
    const zoneId = /** @type {HTMLElement} */ (el).dataset.zoneSummary
    const c = w.model.counts((s) => s.zone_id === zoneId)
    el.textContent = ` ${c.free} of ${c.total} free`
  }
}

function drawSensors(w) {
  $('sensors').replaceChildren(...view.sensorPanel(w.model).filter(Boolean))
}

function drawSessions(w) {
  if (!w.sessions) return
  $('sessions').replaceChildren(...view.sessionsPanel(w.sessions, w.model, w.lot.time_zone).filter(Boolean))
}

/** Today's numbers: the dashboard for admins; operators see what they may read (the dashboard is admin-only). */
function drawToday(w) {
  const all = w.model.counts()
  const rate =
    all.total - all.unknown > 0
      ? Math.round(((all.total - all.unknown - all.free) / (all.total - all.unknown)) * 100)
      : 0
  const d = w.dashboard
  if (d) {
    const revenue = d.today_revenue.length
      ? d.today_revenue.map((m) => view.money(m.amount, m.currency)).join(' + ')
      : 'none yet'
    const figures = {
      tiles: [
        ['Occupancy', `${d.occupancy_rate} %`, `${d.occupied_spaces} of ${d.total_spaces}`],
        ['Available', d.available_spaces],
        ['Entries today', d.today_entries],
        ['Exits today', d.today_exits],
        ['Revenue today', revenue],
        ['Active sessions', d.active_sessions],
        ['EV charging', d.active_ev_charging],
        ['Reservations to come', d.pending_reservations],
      ],
      note: `${d.date ?? ''}${d.time_zone ? ` (${d.time_zone})` : ''} · as of ${view.clock(d.as_of, w.lot.time_zone)}`,
    }
    $('today').replaceChildren(...view.todayPanel(figures).filter(Boolean))
    return
  }
  const sessions = w.sessions ? `${w.sessions.data.length}${w.sessions.next_cursor ? '+' : ''}` : '…'
  const figures = {
    tiles: [
      ['Occupancy', `${rate} %`, `${all.occupied} of ${all.total}`],
      ['Available', all.free],
      ['Active sessions', sessions],
      ['EV charging', w.model.charging.size],
      ['Reserved', all.reserved],
      ['Maintenance', all.maintenance],
    ],
    note:
      api.user()?.role === 'admin'
        ? 'The dashboard could not be read; these figures are the live ones.'
        : 'Entries, exits and revenue are on the admin dashboard.',
  }
  $('today').replaceChildren(...view.todayPanel(figures).filter(Boolean))
}

/** Relative times ("2 min ago") and durations move on without a re-read. */
function drawClocks(w) {
  if (!w.loaded) return
  drawSensors(w)
  drawSessions(w)
}

// Periodic reads: sessions with their fees, today's numbers, sensor health, EV charging

/** @param {Watch} w */
async function refreshPanels(w) {
  const id = encodeURIComponent(w.lot.id)
  const isAdmin = api.user()?.role === 'admin'
  const [sessions, dashboard, states] = await Promise.allSettled([
    api.get(`/api/v1/sessions/active?lot_id=${id}&limit=50`),
    isAdmin ? api.get(`/api/v1/reports/dashboard?lot_id=${id}`) : Promise.resolve(null),
    w.loaded ? api.all(`/api/v1/lots/${id}/spaces/states`, 500) : Promise.resolve(null),
  ])
  if (w.closed) return
  if (sessions.status === 'fulfilled') w.sessions = sessions.value
  else stale('sessions', sessions.reason)
  w.dashboard = dashboard.status === 'fulfilled' ? dashboard.value : w.dashboard
  if (states.status === 'fulfilled' && states.value) w.model.setDevices(states.value)
  if (!w.loaded) {
    if (w.sessions) drawSessions(w)
    return
  }
  drawSessions(w)
  drawSensors(w)
  drawToday(w)
  if (states.status === 'rejected') stale('sensors', states.reason)
  if (dashboard.status === 'rejected') stale('today', dashboard.reason)
}

/** A panel whose refresh failed keeps its last figures and says so. */
function stale(panelId, error) {
  const panel = $(panelId)
  panel.querySelector('.stale-note')?.remove()
  panel.prepend(h('p', { class: 'stale-note error' }, `Not refreshed: ${error?.message ?? error}`))
}

/** @param {Watch} w */
async function refreshCharging(w) {
  if (!w.loaded) return
  let stations
  try {
    stations = await api.all(`/api/v1/ev-stations?lot_id=${encodeURIComponent(w.lot.id)}`)
  } catch {
    return // the next round tries again
  }
  if (w.closed) return
  const before = w.model.charging
  const now = chargingSpaces(stations)
  w.model.charging = now
  for (const spaceId of new Set([...before, ...now])) {
    if (before.has(spaceId) === now.has(spaceId)) continue
    const space = w.model.spaces.get(spaceId)
    const cell = w.cells.get(spaceId)
    if (space && cell) view.paintCell(cell, space, w.model.shownState(space))
  }
  drawToday(w)
}

// The map by keyboard: one tab stop per zone, arrows move inside it; Enter or Space opens a space.

$('levels').addEventListener('keydown', (event) => {
  const cell = /** @type {HTMLElement} */ (event.target).closest?.('.space')
  if (!cell?.parentElement) return
  const cells = /** @type {HTMLElement[]} */ ([...cell.parentElement.children])
  const index = cells.indexOf(cell)
  const columns = getComputedStyle(cell.parentElement).gridTemplateColumns.split(' ').length || 1
  const moves = {
    ArrowRight: index + 1,
    ArrowLeft: index - 1,
    ArrowDown: index + columns,
    ArrowUp: index - columns,
    Home: 0,
    End: cells.length - 1,
  }
  const next = moves[event.key]
  if (next === undefined || next < 0 || next >= cells.length) return
  event.preventDefault()
  focusCell(cells, cells[next])
})

function focusCell(cells, target) {
  for (const c of cells) c.tabIndex = c === target ? 0 : -1
  target.focus()
}

$('levels').addEventListener('click', (event) => {
  const cell = /** @type {HTMLElement} */ (event.target).closest?.('.space')
  if (!cell?.parentElement || !watch) return
  focusCell([...cell.parentElement.children], cell)
  showSpace(watch, cell.dataset.spaceId ?? '')
})

function showSpace(w, spaceId) {
  const space = w.model.spaces.get(spaceId)
  if (!space) return
  const session = w.sessions?.data.find((s) => s.space_id === spaceId) ?? null
  $('space-dialog-title').textContent = `Space ${space.number}`
  $('space-dialog-body').replaceChildren(
    ...view.spaceDetails(space, w.model.shownState(space), session, w.lot.time_zone),
  )
  const dialog = $('space-dialog')
  dialog.showModal()
}

// Start

$('legend').replaceChildren(...view.legend())
if (api.user()) {
  api.resume()
  void start()
} else showSignIn()
