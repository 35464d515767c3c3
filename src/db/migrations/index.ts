import type { Migration } from '../migrator.ts'
import { installationRecord } from './0001_installation_record.ts'
import { defaultVehicleTypes } from './0002_default_vehicle_types.ts'
import { documentLinkSecret } from './0003_document_link_secret.ts'

/** Every migration, in id order. Add new ones at the end; never edit one that has shipped. */
export const migrations: readonly Migration[] = [installationRecord, defaultVehicleTypes, documentLinkSecret]
