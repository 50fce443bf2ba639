/**
 * What a rule pattern module provides: the YAML shape of its part of a rule (a TypeBox schema, the
 * one place that shape is written: the rule file validator and the spec types derive from it) and
 * a compiler from that part to a run-time {@link Pattern}. Register a new pattern in
 * operators/ruleSpec.ts (`PATTERNS`, and its schema under its key in `ruleSchema`).
 */
import { type TSchema, Type } from 'typebox';
import type { Compiled, Pattern } from '../ruleModel.js';

/** A problem at `path`, relative to the rule. */
export type Issue = (path: ReadonlyArray<string | number>, message: string) => void;

/** Helpers a pattern compiler reads its mapping with; each reports problems with their path. */
export interface CompileContext {
  /** The rule's path prefix of this pattern's fields (['absence'] or [] for top-level fields). */
  readonly at: ReadonlyArray<string | number>;
  issue(field: string, message: string): void;
  /** A set of event types (`x` or `[x, y]`); empty when absent. */
  types(field: string): ReadonlySet<string>;
  /** A positive duration in ms; 0 when absent. */
  duration(field: string): number;
  /** A whole number >= 1; 0 when absent. */
  count(field: string): number;
  /** A CEL expression; undefined when absent. */
  expression(field: string): Compiled | undefined;
  /** A CEL condition (boolean); undefined when absent. */
  condition(field: string): Compiled | undefined;
}

/** A rule pattern: its YAML key and shape, and its compiler. */
export interface PatternDefinition {
  /**
   * The rule key that selects it (`absence: {...}`), or a top-level field of the rule that does
   * (`crosses`); null for the default on-event pattern.
   */
  readonly key: string | null;
  /** Whether `key` holds a mapping of the pattern's own fields (else the fields are the rule's). */
  readonly mapping: boolean;
  /** Schema of the value under `key` (a mapping pattern) or of the rule fields it adds. */
  readonly schema: TSchema;
  /**
   * `oncePer` values that state what the pattern does anyway (`purchaseCycle`, `inactiveSpell`):
   * accepted only on rules of this pattern.
   */
  readonly oncePer?: string;
  /** Compiles its fields (the mapping under `key`, or the rule for top-level patterns). */
  compile(fields: Record<string, unknown>, c: CompileContext): Pattern | undefined;
}

/** An event type or a non-empty list of them. */
export const EventTypes = Type.Union([
  Type.String({ minLength: 1 }),
  Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
]);

/** A duration such as `30s`, `10m`, `24h`, `7d` (format checked by operators/duration.ts). */
export const Duration = Type.String({ format: 'duration' });

/** A CEL expression (compiled and type checked when the rule loads). */
export const Cel = Type.String({ minLength: 1 });

/** A whole number >= 1. */
export const Count = Type.Integer({ minimum: 1 });

/** The event types a pattern listens to: the union of its type sets. */
export function listened(...sets: ReadonlySet<string>[]): string[] {
  const all = new Set<string>();
  for (const s of sets) for (const t of s) all.add(t);
  return [...all];
}
