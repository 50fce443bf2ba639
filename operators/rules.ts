/**
 * The rule language, public entry: specs (operators/ruleSpec.ts), the compiler
 * (operators/ruleCompiler.ts), the evaluating rule set (operators/ruleSet.ts) and the delivery
 * policy (operators/deliveryPolicy.ts). The format and its semantics are in docs/RULES.md.
 */
export { compileRules, SESSIONLESS_FALLBACK_MS } from './ruleCompiler.js';
export type { CustomerScope, DeliveryCounters, RuleMemory, RuleRun } from './ruleSet.js';
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
export { isRuleCompileError, RuleCompileError } from './ruleSpec.js';
