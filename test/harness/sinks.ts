/** The pipeline's sinks for tests that look only at what the engine fired (or at nothing). */
import type { PipelineSinks } from '../../engine/runtime/deliverer.js';
import type { Trigger } from '../../operators/types.js';

/**
 * Sinks that accept everything at once and keep nothing, except the triggers published, pushed to
 * `triggers` when given. A test replaces one member to hold or fail a sink.
 */
export function nullSinks(triggers?: Trigger[]): PipelineSinks {
  return {
    triggers: { publish: async (t) => void triggers?.push(...t) },
    deadLetters: { publish: async () => {} },
    profiles: { put: async () => {} },
    clickhouse: {
      writeEncodedEvents: async () => {},
      writeTriggers: async () => {},
      writeProfiles: async () => {},
      flush: async () => {},
    },
  };
}
