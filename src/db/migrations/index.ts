import type { Migration } from '../migrator.ts'
import { installationRecord } from './0001_installation_record.ts'

/** Every migration, in id order. Add new ones at the end; never edit one that has shipped. */
export const migrations: readonly Migration[] = [installationRecord]
