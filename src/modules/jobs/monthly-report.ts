import { escapeHtml } from '../../shared/mailer.ts'
import { startOfDay } from '../analytics/local-day.ts'

// The monthly activity report: figures per lot for one calendar month in the lot's time zone,
// rendered as a self-contained HTML page (the e-mail body and GET /reports/monthly/{month}).

export type LotFigures = {
  lot_id: string
  lot_name: string
  time_zone: string
  currency: string
  entries: number
  exits: number
  /** Minor units: payments settled in the month. */
  revenue_gross: number
  /** Minor units: refunds made in the month. */
  refunds: number
  reservations: number
  /** Mean stay of the sessions that left in the month, in minutes; null without exits. */
  average_stay_minutes: number | null
}

export type MonthlyReport = { month: string; generated_at: Date; lots: LotFigures[] }

/** `YYYY-MM` of the month before the one `at` falls in (UTC). */
export function previousMonth(at: Date): string {
  const d = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() - 1, 1))
  return d.toISOString().slice(0, 7)
}

/** The local midnight that starts the first day of a month in a time zone (local-day.ts: a midnight
 * daylight saving skips starts the month at the change). */
function monthStart(year: number, monthIndex: number, timeZone: string): Date {
  const first = new Date(Date.UTC(year, monthIndex, 1)).toISOString().slice(0, 10)
  return startOfDay(first, timeZone)
}

/** A month `YYYY-MM` in a time zone as the instants [start, end). */
export function monthBounds(month: string, timeZone: string): { start: Date; end: Date } {
  const [y = 1970, m = 1] = month.split('-').map(Number)
  return { start: monthStart(y, m - 1, timeZone), end: monthStart(y, m, timeZone) }
}

/** 123456 minor units of EUR -> "1,234.56 EUR" (two-decimal currencies; JPY and such print as is). */
export function formatMoney(minor: number, currency: string): string {
  const zeroDecimal = ['JPY', 'KRW', 'VND', 'CLP', 'ISK', 'HUF', 'TWD', 'UGX'].includes(currency)
  const value = zeroDecimal ? minor : minor / 100
  return `${value.toLocaleString('en-US', { minimumFractionDigits: zeroDecimal ? 0 : 2, maximumFractionDigits: zeroDecimal ? 0 : 2 })} ${currency}`
}

const duration = (minutes: number | null) =>
  minutes === null
    ? '&ndash;'
    : `${Math.floor(minutes / 60)} h ${String(Math.round(minutes % 60)).padStart(2, '0')} min`

export function renderMonthlyReport(report: MonthlyReport): string {
  const cell = (text: string, align = 'right') =>
    `<td style="padding:4px 10px;border-bottom:1px solid #ddd;text-align:${align}">${text}</td>`
  const rows = report.lots
    .map((lot) =>
      [
        '<tr>',
        cell(escapeHtml(lot.lot_name), 'left'),
        cell(String(lot.entries)),
        cell(String(lot.exits)),
        cell(escapeHtml(formatMoney(lot.revenue_gross, lot.currency))),
        cell(escapeHtml(formatMoney(lot.refunds, lot.currency))),
        cell(escapeHtml(formatMoney(lot.revenue_gross - lot.refunds, lot.currency))),
        cell(String(lot.reservations)),
        cell(duration(lot.average_stay_minutes)),
        '</tr>',
      ].join(''),
    )
    .join('\n')
  const head = [
    'Lot',
    'Entries',
    'Exits',
    'Revenue',
    'Refunds',
    'Net revenue',
    'Reservations',
    'Average stay',
  ]
    .map((h) => `<th style="padding:4px 10px;border-bottom:2px solid #333;text-align:left">${h}</th>`)
    .join('')
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Parking activity report ${report.month}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;color:#222">
<h1 style="font-size:20px">Parking activity report: ${report.month}</h1>
<p>Each lot's figures are for the calendar month in the lot's time zone. Money in the lot's currency.</p>
<table style="border-collapse:collapse" data-month="${report.month}">
<thead><tr>${head}</tr></thead>
<tbody>
${rows || '<tr><td colspan="8">No lots.</td></tr>'}
</tbody>
</table>
<p style="color:#777;font-size:12px">Generated ${report.generated_at.toISOString()} by smart-parking.</p>
</body>
</html>
`
}

/** The plain-text part of the e-mail. */
export function monthlyReportText(report: MonthlyReport): string {
  return [
    `Parking activity report: ${report.month}`,
    '',
    ...report.lots.map(
      (lot) =>
        `${lot.lot_name}: ${lot.entries} entries, ${lot.exits} exits, revenue ${formatMoney(lot.revenue_gross - lot.refunds, lot.currency)} net, ${lot.reservations} reservations, average stay ${lot.average_stay_minutes === null ? '-' : `${Math.round(lot.average_stay_minutes)} min`}`,
    ),
  ].join('\n')
}
