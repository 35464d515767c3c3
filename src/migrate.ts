import { loadConfigOrExit } from './config.ts'
import { migrations } from './db/migrations/index.ts'
import { runMigrations } from './db/migrator.ts'
import { lockDataDir } from './embedded/data-dir-lock.ts'
import { ferretDb } from './embedded/local-services.ts'
import { canConnect } from './embedded/service-process.ts'
import { createLogger } from './shared/logger.ts'
import { connectDatabase, type Database } from './shared/mongo.ts'

// npm run migrate              apply pending migrations, in order
// npm run migrate -- --dry-run list what is applied and what would run
// Without MONGODB_URI it works on the embedded FerretDB: the running one if `npm start` is up,
// otherwise it starts it for the duration.

const dryRun = process.argv.includes('--dry-run')
const config = loadConfigOrExit()
const logger = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL)

let uri = config.MONGODB_URI
let stopEmbedded = async () => {}
if (!uri) {
  const local = ferretDb(`${config.paths.data}/ferretdb`, config.EMBEDDED_MONGODB_PORT)
  if (!(await canConnect(config.EMBEDDED_MONGODB_PORT))) {
    // The same lock as `npm start`: neither may take over the other's FerretDB.
    const unlock = await lockDataDir(config.paths.data)
    stopEmbedded = async () => {
      await local.process.stop()
      unlock()
    }
    await local.process.start()
  }
  uri = local.url
}

let db: Database | undefined
try {
  db = await connectDatabase(uri)
  const report = await runMigrations(db, migrations, { logger, dryRun })
  for (const id of report.alreadyApplied) console.log(`  applied   ${id}`)
  for (const id of report.applied) console.log(`  applied   ${id}  (now)`)
  for (const id of report.pending) console.log(`  pending   ${id}${dryRun ? '  (dry run: not applied)' : ''}`)
  if (report.applied.length + report.pending.length === 0)
    console.log('  nothing to do: every migration is applied')
} finally {
  await db?.close()
  await stopEmbedded()
}
