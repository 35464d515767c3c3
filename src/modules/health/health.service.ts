import { DependencyDown } from '../../shared/errors.ts'
import type { Metrics } from '../../shared/metrics.ts'

export const dependencyNames = ['database', 'redis', 'broker'] as const
export type DependencyName = (typeof dependencyNames)[number]

export type DependencyCheck = { status: 'up' | 'down'; latency_ms: number; reason?: string }
export type Readiness = {
  ready: boolean
  /** Set once shutdown has begun: load balancers should send no new work. */
  draining: boolean
  down: DependencyName[]
  checks: Record<DependencyName, DependencyCheck>
}

/** A probe resolves when its dependency answers and rejects (or times out) when it does not. */
export type Probes = Record<DependencyName, () => Promise<void>>

export type HealthService = ReturnType<typeof createHealthService>

export function createHealthService(deps: { probes: Probes; metrics: Metrics; version: string }) {
  const startedAt = Date.now()
  let draining = false

  async function check(name: DependencyName): Promise<DependencyCheck> {
    const begin = performance.now()
    try {
      await deps.probes[name]()
      deps.metrics.dependencyUp.set({ dependency: name }, 1)
      return { status: 'up', latency_ms: Math.round((performance.now() - begin) * 10) / 10 }
    } catch (error) {
      deps.metrics.dependencyUp.set({ dependency: name }, 0)
      return {
        status: 'down',
        latency_ms: Math.round(performance.now() - begin),
        // Only our own probe messages: no driver text reaches a response.
        reason: error instanceof DependencyDown ? error.message : 'unreachable',
      }
    }
  }

  return {
    liveness() {
      return {
        status: 'ok' as const,
        version: deps.version,
        uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
      }
    },

    async readiness(): Promise<Readiness> {
      const results = await Promise.all(dependencyNames.map(check))
      const checks = Object.fromEntries(dependencyNames.map((name, i) => [name, results[i]])) as Record<
        DependencyName,
        DependencyCheck
      >
      const down = dependencyNames.filter((name) => checks[name].status === 'down')
      return { ready: down.length === 0 && !draining, draining, down, checks }
    },

    /** Readiness fails from now on, while in-flight work finishes. */
    startDraining() {
      draining = true
    },
  }
}
