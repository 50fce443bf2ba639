import { newCustomerState } from '../../operators/profile.js';
import type { CustomerScope, RuleMemory } from '../../operators/rules.js';

const scopes = new WeakMap<RuleMemory, CustomerScope>();

/**
 * Customer c1's scope around `memory`: the cooldown marks, caps and timers live as long as the
 * pattern memory does, as they do for a customer in a worker.
 */
export function scopeOf(memory: RuleMemory): CustomerScope {
  let scope = scopes.get(memory);
  if (scope === undefined) {
    scope = { customer: 'c1', state: newCustomerState('c1'), memory, fired: {}, caps: {}, timers: {} };
    scopes.set(memory, scope);
  }
  return scope;
}

/** Puts a scope (e.g. one read back from a checkpoint) under its memory. */
export function setScope(scope: CustomerScope): void {
  scopes.set(scope.memory, scope);
}
