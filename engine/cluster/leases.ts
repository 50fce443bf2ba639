/**
 * Several engine instances sharing one deployment's key groups, coordinated through NATS itself
 * (docs/SCALING.md). A KV bucket `cx_leases_<deployment>` whose entries live `leaseTtlMs` unless
 * renewed holds:
 *
 * - `deployment`: what every instance must agree on (key-group count, rule set, ClickHouse target);
 *   an instance that differs refuses to start, naming what differs;
 * - `member.<instance>`: one per live instance, renewed while it runs;
 * - `kg.<n>`: the lease of key group n, created by the instance that takes it (create fails while
 *   another holds it) and renewed by revision compare-and-set.
 *
 * The live members, sorted by name, split the key groups in contiguous ranges (as workers do inside an
 * instance). An instance owns a key group only while it holds its lease; it stops using a lease it
 * could not renew before the lease could expire (`valid()`), so when another instance creates it
 * again the first has stopped publishing for it (fencing by lease time; outputs being deterministic
 * and de-duplicated by id makes a late duplicate harmless as well).
 */
import { hostname } from 'node:os';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { keyGroupRange } from '../../operators/keyGroups.js';
import { BUCKET_RETRY, retrying } from '../../sinks/retry.js';
import { log } from '../runtime/log.js';

/** What the instances of one deployment must share. */
export interface DeploymentTerms {
  keyGroups: number;
  /** Hash of the rule set the instance runs. */
  rules: string;
  /** Where the rows go (ClickHouse URL without credentials, database, cluster). */
  clickhouse: string;
}

/** A live instance as its member entry says. */
export interface Member {
  instance: string;
  host: string;
  pid: number;
  startedAt: number;
}

/** An instance that runs differently from the deployment it joins, or whose name is taken. */
export class DeploymentError extends Error {
  override readonly name = 'DeploymentError';
}

/** The lease of a key group was lost (not renewed in time, or taken): stop using it. */
export class FencedError extends Error {
  override readonly name = 'FencedError';
}

/** Options of {@link Leases.join}. */
export interface LeasesOptions {
  deployment: string;
  /** @default the host name */
  instance?: string;
  terms: DeploymentTerms;
  ttlMs: number;
  /** Replicas of the bucket when created. @default 1 */
  replicas?: number;
}

/** The bucket of a deployment's leases. */
export function leaseBucket(deployment: string): string {
  return `cx_leases_${deployment}`;
}

/** Which member (sorted names) owns each key group: contiguous ranges, every member at least one when it can. */
export function assignKeyGroups(members: readonly string[], keyGroups: number): Map<string, number[]> {
  const sorted = [...members].sort();
  const out = new Map<string, number[]>();
  sorted.forEach((m, i) => {
    const { from, to } = keyGroupRange(i, sorted.length, keyGroups);
    out.set(
      m,
      Array.from({ length: to - from }, (_, k) => from + k),
    );
  });
  return out;
}

/** An instance's membership and key-group leases (see the file comment). */
export class Leases {
  readonly instance: string;
  /** Key groups whose lease this instance holds, with the revision it last wrote. */
  private readonly held = new Map<number, number>();
  private memberRevision = 0;
  /** Until when (ms) every held lease is surely still this instance's. */
  private validUntil = 0;
  private renewing: ReturnType<typeof setInterval> | null = null;
  private lost: string | null = null;

  private constructor(
    private readonly kv: KV,
    private readonly jsm: JetStreamManager,
    private readonly options: LeasesOptions & { instance: string },
    readonly member: Member,
  ) {
    this.instance = options.instance;
  }

  /**
   * Joins the deployment: checks its terms (or sets them, first instance), and registers this
   * instance, waiting up to a lease's lifetime for an earlier run of the same name to expire.
   * @throws DeploymentError
   */
  static async join(nc: NatsConnection, options: LeasesOptions): Promise<Leases> {
    const instance =
      options.instance ||
      hostname()
        .replace(/[^A-Za-z0-9_-]/g, '-')
        .slice(0, 64);
    // several instances starting together create the replicated bucket at once: slow on a busy cluster
    const kv = await retrying(
      'opening the lease bucket',
      () =>
        new Kvm(nc).create(leaseBucket(options.deployment), {
          history: 1,
          ttl: options.ttlMs,
          replicas: options.replicas ?? 1,
        }),
      {
        ...BUCKET_RETRY,
        onRetry: (err) => log.warn({ err }, 'opening the lease bucket failed; trying again'),
      },
    );
    const member: Member = { instance, host: hostname(), pid: process.pid, startedAt: Date.now() };
    const leases = new Leases(kv, await jetstreamManager(nc), { ...options, instance }, member);
    // a bucket just created answers once its replicas elected a leader
    await retrying('reading the deployment terms', () => leases.checkTerms(), {
      ...BUCKET_RETRY,
      fatal: (e) => e instanceof DeploymentError,
    });
    const deadline = Date.now() + options.ttlMs * 2;
    for (;;) {
      try {
        leases.memberRevision = await kv.create(`member.${instance}`, JSON.stringify(member));
        break;
      } catch {
        if (Date.now() > deadline) {
          throw new DeploymentError(
            `an instance named "${instance}" is already running in deployment "${options.deployment}": ` +
              'give each instance its own cluster.instance (CXSTREAM_CLUSTER_INSTANCE)',
          );
        }
        await sleep(250);
      }
    }
    leases.validUntil = Date.now() + leases.safeMs();
    leases.renewing = setInterval(() => void leases.renew(), Math.max(200, Math.floor(options.ttlMs / 5)));
    log.info({ deployment: options.deployment, instance }, 'joined the deployment');
    return leases;
  }

  /** Lease time this instance relies on: 60 % of the TTL (margin for a slow renewal and clock rate). */
  private safeMs(): number {
    return Math.floor(this.options.ttlMs * 0.6);
  }

  /** Compares this instance's terms with the deployment's, or records them (the first instance). */
  private async checkTerms(): Promise<void> {
    const mine = this.options.terms;
    const entry = await this.kv.get('deployment');
    if (entry === null || entry.operation !== 'PUT') {
      await this.kv.put('deployment', JSON.stringify(mine));
      return;
    }
    const theirs = entry.json<DeploymentTerms>();
    const differ = (Object.keys(mine) as Array<keyof DeploymentTerms>).filter((k) => theirs[k] !== mine[k]);
    if (differ.length > 0) {
      const says = differ.map((k) => `${k}: the deployment has ${theirs[k]}, this instance ${mine[k]}`);
      throw new DeploymentError(
        `this instance differs from the running instances of deployment "${this.options.deployment}" (${says.join('; ')}). ` +
          'Run every instance with the same key-group count, rule files and ClickHouse target, or name another deployment.',
      );
    }
  }

  /**
   * The keys under `prefix` that hold a value now: one stream info request listing the bucket's
   * subjects (`kv.keys()` would create a consumer each time: a replicated one in a cluster).
   */
  private async keys(prefix: string): Promise<string[]> {
    const bucket = leaseBucket(this.options.deployment);
    const info = await this.jsm.streams.info(`KV_${bucket}`, { subjects_filter: `$KV.${bucket}.${prefix}>` });
    const at = `$KV.${bucket}.`.length;
    return Object.keys(info.state.subjects ?? {}).map((s) => s.slice(at));
  }

  /** The live instances, sorted by name (a deleted entry's marker counts until it expires: read it). */
  async members(): Promise<string[]> {
    const out: string[] = [];
    for (const key of await this.keys('member.')) {
      const name = key.slice('member.'.length);
      if (name === this.instance) out.push(name);
      else if ((await this.kv.get(key))?.operation === 'PUT') out.push(name);
    }
    return out.sort();
  }

  /** The members' entries (`cxstream status`). */
  async memberEntries(): Promise<Member[]> {
    const out: Member[] = [];
    for (const m of await this.members()) {
      const e = await this.kv.get(`member.${m}`);
      if (e?.operation === 'PUT') out.push(e.json<Member>());
    }
    return out;
  }

  /** Which instance holds each key group's lease now (absent: nobody). */
  async owners(): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    for (const key of await this.keys('kg.')) {
      const e = await this.kv.get(key);
      if (e?.operation === 'PUT') out.set(Number(key.slice(3)), e.string());
    }
    return out;
  }

  /** The key groups the current members give this instance. */
  async assigned(): Promise<number[]> {
    const members = await this.members();
    if (!members.includes(this.instance)) members.push(this.instance);
    return assignKeyGroups(members, this.options.terms.keyGroups).get(this.instance) ?? [];
  }

  /** The key groups whose lease this instance holds, sorted. */
  get owned(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /**
   * One step towards holding exactly `wanted`: gives up the leases not wanted, tries to create the
   * wanted ones not held. Resolves with whether every wanted lease is held now.
   */
  claim(wanted: readonly number[]): Promise<boolean> {
    return this.serial(() => this.claimNow(wanted));
  }

  /**
   * Runs the KV writes of renewals and claims one at a time: a renewal must not write a lease a
   * claim is giving up (its old revision would read as "taken by another").
   */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.writes.then(fn);
    this.writes = next.catch(() => {});
    return next;
  }
  private writes: Promise<unknown> = Promise.resolve();

  private async claimNow(wanted: readonly number[]): Promise<boolean> {
    const want = new Set(wanted);
    for (const [kg, revision] of [...this.held]) {
      if (want.has(kg)) continue;
      this.held.delete(kg);
      await this.kv.delete(`kg.${kg}`, { previousSeq: revision }).catch(() => {});
    }
    for (const kg of wanted) {
      if (this.held.has(kg)) continue;
      try {
        this.held.set(kg, await this.kv.create(`kg.${kg}`, this.instance));
      } catch {
        // held by another instance until it gives it up or its lease expires
      }
    }
    return wanted.every((kg) => this.held.has(kg));
  }

  /** Whether every held lease is surely still this instance's (throws no error). */
  valid(): boolean {
    if (this.lost === null && Date.now() >= this.validUntil) {
      // once lapsed, the leases stay lost until the instance joins again (another may hold them now)
      this.lost = `the key-group leases were not renewed for ${this.safeMs()} ms (NATS unreachable or too slow?): this instance stops processing them`;
    }
    return this.lost === null;
  }

  /** @throws FencedError unless {@link valid} */
  check(): void {
    if (!this.valid()) throw new FencedError(this.lost!);
  }

  /** Why the leases were lost, or null. */
  get lostReason(): string | null {
    return this.lost;
  }

  /** Renews the member entry and every held lease; a lease someone else took is lost for good. */
  private renew(): Promise<void> {
    // one at a time: a renewal stuck in a NATS outage is not queued behind by more
    if (this.renewPending) return Promise.resolve();
    this.renewPending = true;
    return this.serial(() => this.renewNow()).finally(() => {
      this.renewPending = false;
    });
  }
  private renewPending = false;

  private async renewNow(): Promise<void> {
    const started = Date.now();
    try {
      this.memberRevision = await this.kv.update(
        `member.${this.instance}`,
        JSON.stringify(this.member),
        this.memberRevision,
      );
      // all at once: one round trip, not one per key group (a slow round would outlast the lease)
      const renewed = await Promise.all(
        [...this.held].map(async ([kg, revision]) => [
          kg,
          await this.kv.update(`kg.${kg}`, this.instance, revision),
        ]),
      );
      for (const [kg, revision] of renewed) if (this.held.has(kg!)) this.held.set(kg!, revision!);
      // a renewal that ends after the leases lapsed does not revive them: fenced stays fenced
      if (this.valid()) this.validUntil = started + this.safeMs();
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      // a wrong last sequence: the entry expired and was created again (by another instance)
      if (/wrong last sequence/i.test(msg) && this.lost === null) {
        this.lost = `a lease of this instance expired and was taken (${msg}): this instance stops processing its key groups`;
        log.error({ instance: this.instance }, this.lost);
      }
    }
  }

  /**
   * After a lost lease: forgets what was held and registers the member again, so the instance can
   * claim its share anew.
   */
  rejoin(): Promise<void> {
    return this.serial(() => this.rejoinNow());
  }

  private async rejoinNow(): Promise<void> {
    this.held.clear();
    for (;;) {
      try {
        this.memberRevision = await this.kv.create(`member.${this.instance}`, JSON.stringify(this.member));
        break;
      } catch {
        const e = await this.kv.get(`member.${this.instance}`).catch(() => null);
        if (e?.operation === 'PUT' && e.json<Member>().startedAt === this.member.startedAt) {
          this.memberRevision = e.revision;
          break;
        }
        await sleep(250);
      }
    }
    this.lost = null;
    this.validUntil = Date.now() + this.safeMs();
  }

  /** Gives up every lease and the membership (a drained instance). */
  async leave(): Promise<void> {
    if (this.renewing) clearInterval(this.renewing);
    this.renewing = null;
    await this.claim([]).catch(() => {});
    await this.kv.delete(`member.${this.instance}`, { previousSeq: this.memberRevision }).catch(() => {});
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
