import { randomUUID } from 'node:crypto'
import type { Migration } from '../migrator.ts'

/**
 * Gives the installation a stable identity, created once: it names this deployment in logs and,
 * later, its MQTT shared-subscription group. The insert of a fixed `_id` makes a re-run a no-op.
 */
export const installationRecord: Migration = {
  id: '0001_installation_record',
  description: 'create the installation record',
  async up({ db }) {
    try {
      await db
        .collection<{ _id: string; installation_id: string; created_at: Date }>('platform')
        .insertOne({ _id: 'installation', installation_id: randomUUID(), created_at: new Date() })
    } catch (error) {
      if ((error as { code?: number }).code !== 11000) throw error
    }
  },
}
