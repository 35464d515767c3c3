import { loadConfigOrExit } from './config.ts'
import { type EmbeddedStack, startEmbeddedStack } from './embedded/embedded-stack.ts'
import { type Platform, startPlatform, version } from './platform.ts'
import { createLogger, withoutCredentials } from './shared/logger.ts'

// Composition root: config -> embedded services (when no URL is given) -> platform -> doors.
// SIGINT/SIGTERM close the doors first, then connections, then the embedded services.

const config = loadConfigOrExit()

const logger = createLogger(config.LOG_LEVEL, { version })
let embedded: EmbeddedStack | undefined
let platform: Platform | undefined
let stopping = false

const startup = (async () => {
  embedded = await startEmbeddedStack(config, logger)
  platform = await startPlatform(config, embedded.urls, logger)
})()

async function shutdown(reason: string, exitCode: number) {
  if (stopping) return
  stopping = true
  logger.info({ reason }, 'shutting down')
  const force = setTimeout(() => {
    logger.error('shutdown took too long; exiting')
    embedded?.killSync()
    process.exit(1)
  }, config.SHUTDOWN_TIMEOUT_MS + 15_000)
  force.unref()
  // A signal during start-up waits for it, so that nothing it started is left running.
  await startup.catch(() => {})
  await platform?.stop()
  await embedded?.stop()
  logger.info('stopped')
  process.exit(exitCode)
}

// Repeated signals are ignored while the first shutdown runs.
process.on('SIGINT', () => void shutdown('SIGINT', 0))
process.on('SIGTERM', () => void shutdown('SIGTERM', 0))
process.on('exit', () => embedded?.killSync())
process.on('uncaughtException', (error) => {
  // A programmer error: crash (after a clean stop) rather than run in an unknown state.
  logger.fatal({ err: error }, 'uncaught exception')
  void shutdown('uncaughtException', 1)
})

try {
  await startup
} catch (error) {
  logger.fatal({ err: error }, 'start-up failed')
  await shutdown('start-up failed', 1)
}

if (platform && embedded && !stopping && config.NODE_ENV !== 'production') {
  const base = config.PUBLIC_URL ?? platform.url
  const where = (key: 'mongodb' | 'redis' | 'mqtt', label: string) =>
    `  ${label.padEnd(10)} ${withoutCredentials(embedded?.urls[key] ?? '')}${embedded?.embedded.includes(key) ? `  (embedded, data in ${config.paths.data})` : ''}`
  console.log(
    [
      '',
      `smart-parking ${version} is running`,
      `  API        ${base}/api/v1`,
      `  docs       ${base}/docs  (OpenAPI document: ${base}/openapi.json)`,
      `  console    ${base}/console  (operators and admins sign in; the lot live)`,
      `  health     ${base}/health  readiness: ${base}/ready`,
      `  metrics    ${base}/metrics`,
      where('mqtt', 'broker'),
      where('mongodb', 'database'),
      where('redis', 'redis'),
      `  documents  ${config.S3_BUCKET ? `s3://${config.S3_BUCKET}${config.S3_ENDPOINT ? ` at ${config.S3_ENDPOINT}` : ''}` : `${config.paths.documents}  (local disk)`}`,
      `  e-mail     ${config.SMTP_URL ? withoutCredentials(config.SMTP_URL) : `${config.paths.outbox}  (outbox: one .eml file per message)`}`,
      '  Ctrl-C stops everything.',
      '',
    ].join('\n'),
  )
}
