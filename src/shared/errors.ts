// One application error with a closed set of codes; the HTTP status follows from the code alone,
// so the same error raised in a service reads the same over HTTP, MQTT and in jobs.

export const errorCodes = [
  'VALIDATION_FAILED',
  'MALFORMED_REQUEST',
  'UNAUTHENTICATED',
  'PAYMENT_REQUIRED',
  'FORBIDDEN',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNPROCESSABLE',
  'RATE_LIMITED',
  'DEPENDENCY_UNAVAILABLE',
  'INTERNAL',
] as const

export type ErrorCode = (typeof errorCodes)[number]

export type FieldProblem = {
  /** Where the field was read from. */
  in: 'body' | 'query' | 'path' | 'header' | 'cookie' | 'form'
  /** Dotted path of the field, empty for the whole input. */
  field: string
  /** JSON Pointer (RFC 6901) into the input, as RFC 9457 suggests. */
  pointer: string
  reason: string
}

export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'VALIDATION_FAILED':
    case 'MALFORMED_REQUEST':
      return 400
    case 'UNAUTHENTICATED':
      return 401
    case 'PAYMENT_REQUIRED':
      return 402
    case 'FORBIDDEN':
      return 403
    case 'NOT_FOUND':
      return 404
    case 'METHOD_NOT_ALLOWED':
      return 405
    case 'CONFLICT':
      return 409
    case 'PAYLOAD_TOO_LARGE':
      return 413
    case 'UNSUPPORTED_MEDIA_TYPE':
      return 415
    case 'UNPROCESSABLE':
      return 422
    case 'RATE_LIMITED':
      return 429
    case 'DEPENDENCY_UNAVAILABLE':
      return 503
    case 'INTERNAL':
      return 500
  }
}

/** Short, stable human titles; the `detail` carries the specifics of one occurrence. */
export const errorTitles: Record<ErrorCode, string> = {
  VALIDATION_FAILED: 'The request is not valid',
  MALFORMED_REQUEST: 'The request could not be parsed',
  UNAUTHENTICATED: 'Authentication is required',
  PAYMENT_REQUIRED: 'Payment is required',
  FORBIDDEN: 'Not allowed',
  NOT_FOUND: 'Not found',
  METHOD_NOT_ALLOWED: 'Method not allowed',
  CONFLICT: 'Conflict with the current state',
  PAYLOAD_TOO_LARGE: 'The request body is too large',
  UNSUPPORTED_MEDIA_TYPE: 'Unsupported media type',
  UNPROCESSABLE: 'The request cannot be carried out as asked',
  RATE_LIMITED: 'Too many requests',
  DEPENDENCY_UNAVAILABLE: 'A dependency is unavailable',
  INTERNAL: 'Internal error',
}

export class AppError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly errors: FieldProblem[] | undefined
  /** Extension members added to the problem body, for example the state of each dependency. */
  readonly extensions: Record<string, unknown> | undefined
  /** Response headers the problem needs, for example `Allow` on a 405. */
  readonly headers: Record<string, string> | undefined

  constructor(
    code: ErrorCode,
    detail: string,
    options: {
      errors?: FieldProblem[]
      extensions?: Record<string, unknown>
      headers?: Record<string, string>
      cause?: unknown
    } = {},
  ) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'AppError'
    this.code = code
    this.status = statusOf(code)
    this.errors = options.errors
    this.extensions = options.extensions
    this.headers = options.headers
  }
}

/** `VALIDATION_FAILED` -> `validation-failed`, the last segment of the problem type link. */
export function slugOf(code: ErrorCode): string {
  return code.toLowerCase().replaceAll('_', '-')
}

export function problemTypeOf(code: ErrorCode): string {
  return `/problems/${slugOf(code)}`
}

/** Converts a zod-style path to the dotted field name and the JSON Pointer of a field problem. */
export function fieldLocation(path: readonly PropertyKey[]): { field: string; pointer: string } {
  const parts = path.map((p) => String(p))
  return {
    field: parts.join('.'),
    pointer: parts.map((p) => `/${p.replaceAll('~', '~0').replaceAll('/', '~1')}`).join(''),
  }
}

/** A dependency is down, in our own words: safe to show, unlike a driver's message. */
export class DependencyDown extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DependencyDown'
  }
}

const dependencyErrorNames = new Set([
  'MongoServerSelectionError',
  'MongooseServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  'MaxRetriesPerRequestError',
])

/**
 * Operational failures of a dependency (database, Redis, broker) that a retry may cure. They are
 * answered with 503 instead of 500, and never leak the driver's message.
 */
export function isDependencyFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  if (error instanceof DependencyDown || dependencyErrorNames.has(error.name)) return true
  // ioredis with the offline queue off, or a connection lost mid-command; FerretDB's SQLite
  // backend when concurrent writes outwait its lock ("database is locked", SQLITE_BUSY).
  return /Stream isn't writeable|Connection is closed|ECONNREFUSED|ECONNRESET|SQLITE_BUSY|database is locked/.test(
    error.message,
  )
}
