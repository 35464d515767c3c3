// The CSV of a customer's parking history (RFC 4180: CRLF lines, fields quoted when needed).

export const HISTORY_COLUMNS = [
  'session_id',
  'ticket_number',
  'lot_id',
  'lot_name',
  'license_plate',
  'entry_time',
  'exit_time',
  'duration_minutes',
  'status',
  'fee_total',
  'amount_paid',
  'amount_refunded',
  'currency',
  'payment_methods',
  'receipt_numbers',
] as const

export type HistoryRow = Record<(typeof HISTORY_COLUMNS)[number], string | number | null>

/**
 * One field. Text that a spreadsheet would take for a formula (=, +, -, @, tab, CR at the start)
 * is prefixed with an apostrophe (OWASP CSV injection); numbers are written as they are.
 */
export function csvField(value: string | number | null): string {
  if (value === null) return ''
  if (typeof value === 'number') return String(value)
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe
}

export function csvLine(values: readonly (string | number | null)[]): string {
  return `${values.map(csvField).join(',')}\r\n`
}

export const historyHeader = (): string => csvLine(HISTORY_COLUMNS)

export const historyLine = (row: HistoryRow): string => csvLine(HISTORY_COLUMNS.map((column) => row[column]))
