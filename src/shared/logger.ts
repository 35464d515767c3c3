import { pino } from 'pino'

export type Logger = pino.Logger

/** JSON lines to stdout, or to `destination` (tests read the lines back). */
export function createLogger(
  level: string,
  base: Record<string, unknown> = {},
  destination?: pino.DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { app: 'smart-parking', ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Credentials never reach a log line, even when a URL or header is logged whole.
    redact: { paths: ['*.password', '*.authorization', 'req.headers.authorization'], censor: '[redacted]' },
  }
  return destination ? pino(options, destination) : pino(options)
}

/** A URL fit for logs and banners: user and password removed. */
export function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    return parsed.toString()
  } catch {
    return '[unparseable url]'
  }
}
