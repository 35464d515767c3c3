import type { QueryFilter } from 'mongoose'
import { type Database, insertOnce, trusted } from '../../shared/mongo.ts'
import { type DeviceKind, type DeviceRecord, type SpaceBindingRecord, sensorModels } from './sensors.model.ts'

export type SensorsRepository = ReturnType<typeof createSensorsRepository>

export function createSensorsRepository(db: Database) {
  const { devices, spaceBindings } = sensorModels(db)
  return {
    /** False when a device with this id exists already. */
    insertDevice: (device: DeviceRecord): Promise<boolean> => insertOnce(devices, device),

    async findDevice(id: string): Promise<DeviceRecord | undefined> {
      return (await devices.findById(id).lean<DeviceRecord>()) ?? undefined
    },

    /** Written by the admin who changes the device; the space's uniqueness is the binding's business. */
    async updateDevice(
      id: string,
      fields: Partial<Pick<DeviceRecord, 'space_id' | 'model' | 'firmware' | 'secret_hash'>>,
    ): Promise<DeviceRecord | undefined> {
      await devices.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
      return await this.findDevice(id)
    },

    async deleteDevice(id: string): Promise<void> {
      await devices.deleteOne({ _id: id })
    },

    async listDevices(filter: { kind?: DeviceKind | undefined; after?: string | undefined; limit: number }) {
      const query: QueryFilter<DeviceRecord> = {}
      if (filter.kind) query.kind = filter.kind
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await devices.find(query).sort({ _id: 1 }).limit(filter.limit).lean<DeviceRecord[]>()
    },

    /** True when this call bound the space; false when a device holds it already. */
    claimSpace: (spaceId: string, deviceId: string): Promise<boolean> =>
      insertOnce(spaceBindings, { _id: spaceId, device_id: deviceId, created_at: new Date() }),

    /**
     * Of those who found one stale binding, the one whose insert of a takeover mark succeeds may
     * remove it: a conditional delete is no arbiter on FerretDB.
     */
    winTakeover: (binding: SpaceBindingRecord, deviceId: string): Promise<boolean> =>
      insertOnce(spaceBindings, {
        _id: `takeover:${binding._id}:${binding.created_at.getTime()}`,
        device_id: deviceId,
        created_at: new Date(),
      }),

    async findSpaceBinding(spaceId: string): Promise<SpaceBindingRecord | undefined> {
      return (await spaceBindings.findById(spaceId).lean<SpaceBindingRecord>()) ?? undefined
    },

    /** Only the holder's binding goes: a space bound since to another device stays bound. */
    async releaseSpace(spaceId: string, deviceId: string): Promise<void> {
      await spaceBindings.deleteOne({ _id: spaceId, device_id: deviceId })
    },
  }
}
