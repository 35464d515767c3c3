import type { QueryFilter } from 'mongoose'
import { type Database, isDuplicateKey, trusted } from '../../shared/mongo.ts'
import {
  type PlateClaimRecord,
  type VehicleRecord,
  type VehicleTypeRecord,
  vehicleModels,
} from './vehicles.model.ts'

export type VehiclesRepository = ReturnType<typeof createVehiclesRepository>

export function createVehiclesRepository(db: Database) {
  const { vehicleTypes, vehicles, plateClaims } = vehicleModels(db)
  return {
    /** False when a type with this code exists already. */
    async insertVehicleType(type: VehicleTypeRecord): Promise<boolean> {
      try {
        await vehicleTypes.create(type)
        return true
      } catch (error) {
        if (isDuplicateKey(error)) return false
        throw error
      }
    },

    async findVehicleType(id: string): Promise<VehicleTypeRecord | undefined> {
      return (await vehicleTypes.findById(id).lean<VehicleTypeRecord>()) ?? undefined
    },

    async listVehicleTypes(filter: { after?: string; limit: number }) {
      const query: QueryFilter<VehicleTypeRecord> = {}
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await vehicleTypes.find(query).sort({ _id: 1 }).limit(filter.limit).lean<VehicleTypeRecord[]>()
    },

    /** True when this call claimed the plate; false when a vehicle holds it already. */
    async claimPlate(plate: string, vehicleId: string): Promise<boolean> {
      try {
        await plateClaims.create({ _id: plate, vehicle_id: vehicleId, created_at: new Date() })
        return true
      } catch (error) {
        if (isDuplicateKey(error)) return false
        throw error
      }
    },

    async findPlateClaim(plate: string): Promise<PlateClaimRecord | undefined> {
      return (await plateClaims.findById(plate).lean<PlateClaimRecord>()) ?? undefined
    },

    /** Only the holder's claim goes: a claim taken over by another vehicle stays. */
    async releasePlate(plate: string, vehicleId: string): Promise<void> {
      await plateClaims.deleteOne({ _id: plate, vehicle_id: vehicleId })
    },

    async insertVehicle(vehicle: VehicleRecord): Promise<void> {
      await vehicles.create(vehicle)
    },

    async findVehicle(id: string): Promise<VehicleRecord | undefined> {
      return (await vehicles.findById(id).lean<VehicleRecord>()) ?? undefined
    },

    /** Written only by the vehicle's owner; the plate's uniqueness is the claim's business. */
    async updateVehicle(
      id: string,
      fields: Omit<VehicleRecord, '_id' | 'owner_id' | 'created_at' | 'updated_at'>,
    ): Promise<VehicleRecord | undefined> {
      await vehicles.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
      return await this.findVehicle(id)
    },

    async deleteVehicle(id: string): Promise<void> {
      await vehicles.deleteOne({ _id: id })
    },

    async listVehiclesOf(ownerId: string, filter: { after?: string; limit: number }) {
      const query: QueryFilter<VehicleRecord> = { owner_id: ownerId }
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await vehicles.find(query).sort({ _id: 1 }).limit(filter.limit).lean<VehicleRecord[]>()
    },
  }
}
