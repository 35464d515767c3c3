import { AppError } from '../../shared/errors.ts'
import { decodeCursor, pageOf, uuidv7 } from '../../shared/ids.ts'
import type { Role } from '../accounts/accounts.model.ts'
import type { EntryProfile } from '../sessions/sessions.service.ts'
import type { SizeCategory, VehicleRecord, VehicleTypeRecord } from './vehicles.model.ts'
import type { VehiclesRepository } from './vehicles.repository.ts'

export type VehicleTypeView = {
  id: string
  name: string
  size_category: SizeCategory
  description: string | null
  created_at: string
}

export type VehicleView = Omit<VehicleRecord, '_id' | 'created_at' | 'updated_at'> & {
  id: string
  created_at: string
  updated_at: string
}

export type VehicleInput = {
  license_plate: string
  vehicle_type_id: string
  make?: string | undefined
  model?: string | undefined
  color?: string | undefined
  is_ev?: boolean | undefined
}

export type VehiclesService = ReturnType<typeof createVehiclesService>

/** Who asks: customers see their own vehicles only; staff may read any. */
export type Viewer = { userId: string; role: Role }

type Page = { limit: number; cursor?: string | undefined }

/**
 * A claim whose vehicle is gone, or carries another plate, this long after it was made was left
 * by a write that did not finish (a crash between the claim and the vehicle write); it may go.
 */
const STALE_CLAIM_MS = 60_000

/** "ab-12 c" and "AB12C" are one plate: uppercase, without spaces, dashes and dots. */
export function normalizePlate(plate: string): string {
  return plate.toUpperCase().replace(/[\s.-]/g, '')
}

export function toVehicleTypeView(type: VehicleTypeRecord): VehicleTypeView {
  return {
    id: type._id,
    name: type.name,
    size_category: type.size_category,
    description: type.description,
    created_at: type.created_at.toISOString(),
  }
}

export function toVehicleView(vehicle: VehicleRecord): VehicleView {
  return {
    id: vehicle._id,
    license_plate: vehicle.license_plate,
    plate_normalized: vehicle.plate_normalized,
    vehicle_type_id: vehicle.vehicle_type_id,
    make: vehicle.make,
    model: vehicle.model,
    color: vehicle.color,
    is_ev: vehicle.is_ev,
    owner_id: vehicle.owner_id,
    created_at: vehicle.created_at.toISOString(),
    updated_at: vehicle.updated_at.toISOString(),
  }
}

const text = (value: string | undefined): string | null => value?.trim() || null

/** What an owner sets, on create and on replace alike. */
function editableFields(input: VehicleInput, plate: string) {
  return {
    license_plate: input.license_plate.trim(),
    plate_normalized: plate,
    vehicle_type_id: input.vehicle_type_id,
    make: text(input.make),
    model: text(input.model),
    color: text(input.color),
    is_ev: input.is_ev ?? false,
  }
}

const noVehicle = () => new AppError('NOT_FOUND', 'No such vehicle')

function plateOrThrow(licensePlate: string): string {
  const plate = normalizePlate(licensePlate)
  if (!/^[A-Z0-9]{2,10}$/.test(plate)) {
    const reason = 'must have 2 to 10 letters and digits, besides spaces, dashes and dots'
    throw new AppError('VALIDATION_FAILED', `The license plate ${reason}`, {
      errors: [{ in: 'body', field: 'license_plate', pointer: '/license_plate', reason }],
    })
  }
  return plate
}

export function createVehiclesService(deps: { repo: VehiclesRepository }) {
  const { repo } = deps

  async function requireType(id: string): Promise<void> {
    if (!(await repo.findVehicleType(id))) throw new AppError('NOT_FOUND', `No vehicle type ${id}`)
  }

  /**
   * The claim's insert decides: of 50 concurrent registrations of one plate exactly one gets
   * through. A stale claim is removed and the insert tried once more, which stays the arbiter.
   */
  async function claimPlate(plate: string, vehicleId: string): Promise<void> {
    if (await repo.claimPlate(plate, vehicleId)) return
    const claim = await repo.findPlateClaim(plate)
    if (claim && Date.now() - claim.created_at.getTime() > STALE_CLAIM_MS) {
      const holder = await repo.findVehicle(claim.vehicle_id)
      if (!holder || holder.plate_normalized !== plate) {
        await repo.releasePlate(plate, claim.vehicle_id)
        if (await repo.claimPlate(plate, vehicleId)) return
      }
    } else if (!claim && (await repo.claimPlate(plate, vehicleId))) {
      return
    }
    throw new AppError('CONFLICT', 'A vehicle with this license plate is already registered')
  }

  /** Another owner's vehicle is "not found": its existence is none of the caller's business. */
  async function ownVehicle(ownerId: string, id: string): Promise<VehicleRecord> {
    const vehicle = await repo.findVehicle(id)
    if (!vehicle || vehicle.owner_id !== ownerId) throw noVehicle()
    return vehicle
  }

  return {
    async listTypes(query: Page) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const rows = await repo.listVehicleTypes({ ...(after ? { after } : {}), limit: query.limit + 1 })
      return pageOf(rows, query.limit, toVehicleTypeView)
    },

    async createType(input: {
      id: string
      name: string
      size_category: SizeCategory
      description?: string | undefined
    }): Promise<VehicleTypeView> {
      const type: VehicleTypeRecord = {
        _id: input.id,
        name: input.name.trim(),
        size_category: input.size_category,
        description: text(input.description),
        created_at: new Date(),
      }
      if (!(await repo.insertVehicleType(type))) {
        throw new AppError('CONFLICT', `A vehicle type ${input.id} exists already`)
      }
      return toVehicleTypeView(type)
    },

    async list(ownerId: string, query: Page) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const rows = await repo.listVehiclesOf(ownerId, { ...(after ? { after } : {}), limit: query.limit + 1 })
      return pageOf(rows, query.limit, toVehicleView)
    },

    async create(ownerId: string, input: VehicleInput): Promise<VehicleView> {
      const plate = plateOrThrow(input.license_plate)
      await requireType(input.vehicle_type_id)
      const id = uuidv7()
      await claimPlate(plate, id)
      const now = new Date()
      const vehicle: VehicleRecord = {
        _id: id,
        owner_id: ownerId,
        ...editableFields(input, plate),
        created_at: now,
        updated_at: now,
      }
      try {
        await repo.insertVehicle(vehicle)
      } catch (error) {
        await repo.releasePlate(plate, id)
        throw error
      }
      return toVehicleView(vehicle)
    },

    async get(viewer: Viewer, id: string): Promise<VehicleView> {
      if (viewer.role === 'customer') return toVehicleView(await ownVehicle(viewer.userId, id))
      const vehicle = await repo.findVehicle(id)
      if (!vehicle) throw noVehicle()
      return toVehicleView(vehicle)
    },

    /** Full replacement of the editable fields. A new plate is claimed before the old one goes. */
    async replace(ownerId: string, id: string, input: VehicleInput): Promise<VehicleView> {
      const plate = plateOrThrow(input.license_plate)
      const current = await ownVehicle(ownerId, id)
      await requireType(input.vehicle_type_id)
      const plateChanges = plate !== current.plate_normalized
      if (plateChanges) await claimPlate(plate, id)
      let updated: VehicleRecord | undefined
      try {
        updated = await repo.updateVehicle(id, editableFields(input, plate))
      } catch (error) {
        if (plateChanges) await repo.releasePlate(plate, id)
        throw error
      }
      if (plateChanges) await repo.releasePlate(current.plate_normalized, id)
      if (!updated) throw noVehicle()
      return toVehicleView(updated)
    },

    /** Every vehicle of a deleted account goes, and its plate is free again. */
    async removeAllOf(ownerId: string): Promise<void> {
      for (;;) {
        const vehicles = await repo.listVehiclesOf(ownerId, { limit: 100 })
        for (const vehicle of vehicles) {
          await repo.deleteVehicle(vehicle._id)
          await repo.releasePlate(vehicle.plate_normalized, vehicle._id)
        }
        if (vehicles.length < 100) return
      }
    },

    async remove(ownerId: string, id: string): Promise<void> {
      const vehicle = await ownVehicle(ownerId, id)
      await repo.deleteVehicle(id)
      await repo.releasePlate(vehicle.plate_normalized, id)
    },

    /** What a gate needs of a registered plate (normalised): its type's size, EV, owner. */
    async entryProfile(plate: string): Promise<EntryProfile | undefined> {
      const claim = await repo.findPlateClaim(plate)
      const vehicle = claim ? await repo.findVehicle(claim.vehicle_id) : undefined
      if (!vehicle || vehicle.plate_normalized !== plate) return undefined
      const type = await repo.findVehicleType(vehicle.vehicle_type_id)
      return {
        vehicleId: vehicle._id,
        ownerId: vehicle.owner_id,
        vehicleType: vehicle.vehicle_type_id,
        size: type?.size_category ?? 'STANDARD',
        isEv: vehicle.is_ev,
      }
    },

    /** For gates and operators: by the claim's `_id`, then the vehicle by its `_id`. */
    async findByPlate(licensePlate: string): Promise<VehicleView> {
      const plate = normalizePlate(licensePlate)
      const claim = await repo.findPlateClaim(plate)
      const vehicle = claim ? await repo.findVehicle(claim.vehicle_id) : undefined
      if (!vehicle || vehicle.plate_normalized !== plate) {
        throw new AppError('NOT_FOUND', `No vehicle with the plate ${plate}`)
      }
      return toVehicleView(vehicle)
    },
  }
}
