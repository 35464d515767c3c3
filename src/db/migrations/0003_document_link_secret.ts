import { randomBytes } from 'node:crypto'
import type { Migration } from '../migrator.ts'

/**
 * The key that signs links to documents on local-disk storage, made once and shared by every
 * instance through the database. The insert of a fixed `_id` makes a re-run a no-op.
 */
export const documentLinkSecret: Migration = {
  id: '0003_document_link_secret',
  description: 'create the secret that signs document links',
  async up({ db }) {
    try {
      await db.collection<{ _id: string; secret: string; created_at: Date }>('platform').insertOne({
        _id: 'document-link-secret',
        secret: randomBytes(32).toString('base64url'),
        created_at: new Date(),
      })
    } catch (error) {
      if ((error as { code?: number }).code !== 11000) throw error
    }
  },
}
