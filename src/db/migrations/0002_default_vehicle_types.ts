import type { Migration } from '../migrator.ts'

type VehicleTypeDocument = {
  _id: string
  name: string
  size_category: 'MOTORCYCLE' | 'COMPACT' | 'STANDARD' | 'LARGE'
  description: string | null
  created_at: Date
}

const defaults: Omit<VehicleTypeDocument, 'created_at'>[] = [
  {
    _id: 'motorcycle',
    name: 'Motorcycle',
    size_category: 'MOTORCYCLE',
    description: 'Motorcycles and scooters',
  },
  {
    _id: 'compact',
    name: 'Compact car',
    size_category: 'COMPACT',
    description: 'Small cars that fit compact spaces',
  },
  {
    _id: 'standard',
    name: 'Standard car',
    size_category: 'STANDARD',
    description: 'Sedans, hatchbacks and estates',
  },
  { _id: 'large', name: 'Large car', size_category: 'LARGE', description: 'SUVs and pickups' },
  { _id: 'van', name: 'Van', size_category: 'LARGE', description: 'Vans and minibuses' },
]

/**
 * The default vehicle types, by code. Each is an insert of a fixed `_id`: a re-run, or a type an
 * admin already made under the same code, is left as it is.
 */
export const defaultVehicleTypes: Migration = {
  id: '0002_default_vehicle_types',
  description: 'insert the default vehicle types',
  async up({ db }) {
    const types = db.collection<VehicleTypeDocument>('vehicle_types')
    for (const type of defaults) {
      try {
        await types.insertOne({ ...type, created_at: new Date() })
      } catch (error) {
        if ((error as { code?: number }).code !== 11000) throw error
      }
    }
  },
}
