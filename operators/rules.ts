/**
 * The rule language, public entry: specs and the pattern list (operators/ruleSpec.ts), the
 * compiler (operators/ruleCompiler.ts), the evaluating rule set (operators/ruleSet.ts) and the
 * delivery policy (operators/deliveryPolicy.ts). The format and its semantics are in docs/RULES.md.
 */
import { compileRules } from './ruleCompiler.js';
import { RuleSet } from './ruleSet.js';
import type { RuleSpec } from './ruleSpec.js';

export type { CompiledRules } from './ruleCompiler.js';
export { compileRules, SESSIONLESS_FALLBACK_MS } from './ruleCompiler.js';
export type {
  CustomerScope,
  Decision,
  DeliveryCounters,
  RuleErrors,
  RuleMemory,
  RuleRun,
} from './ruleSet.js';
export { RuleSet } from './ruleSet.js';
export type {
  AbsenceSpec,
  CapSpec,
  CountSpec,
  InactivitySpec,
  PurchaseCycleSpec,
  QuietHoursSpec,
  RuleCompileIssue,
  RuleSpec,
  SequenceSpec,
  StreakSpec,
} from './ruleSpec.js';
export { formatIssue, isRuleCompileError, RuleCompileError } from './ruleSpec.js';

/** Compiles specs into a rule set (throws RuleCompileError listing every issue). */
export function ruleSetOf(specs: RuleSpec[]): RuleSet {
  return new RuleSet(compileRules(specs));
}
