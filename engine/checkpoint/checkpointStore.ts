/**
 * Where partition checkpoints live: a local directory (embedded mode, `CXSTREAM_STATE_DIR`) or a
 * NATS object store (clustered: another instance can take a partition over). A partition's
 * checkpoint is a chain: a full record, replaced as a whole, then the deltas saved after it (the
 * customers changed since the record before). A record is durable once `save` resolves.
 */
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type JetStreamManager, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { type ObjectStore, Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { pack, unpack } from 'msgpackr';
import { READABLE_SNAPSHOT_VERSIONS, SNAPSHOT_VERSION } from '../../operators/partitionState.js';
import { cxstreamVersion } from '../config/config.js';
import { log } from '../runtime/log.js';

/** Checkpoint envelope format this code writes. */
export const CHECKPOINT_VERSION = 3;
/**
 * Envelope formats this code reads: version 1 records are full ones (no `base`, `delta`); versions 1
 * and 2 were written by versions without key groups (one partition's state, `lastSeq`).
 */
const READABLE_VERSIONS: readonly unknown[] = [1, 2, 3];
const FORMAT = 'cxstream.checkpoint';

/** One worker's checkpoint: its encoded state (a section per key group) and the stream positions it stands for. */
export interface CheckpointRecord {
  /** The worker that wrote it, among `partitions`. */
  partition: number;
  /** Workers of the deployment when it was written. */
  partitions: number;
  /**
   * Key-group count of the deployment (customers are in key group hash mod this); absent in records
   * of versions without key groups, whose state is keyed by hash mod `partitions`.
   */
  keyGroups?: number;
  /** The key groups whose sections `state` holds (absent in records of versions without key groups). */
  kgs?: number[];
  /** Every event of these key groups with a stream sequence at or below this is in `state`. */
  coveredSeq: number;
  /** Records of versions without key groups: highest sequence the partition's state applied. */
  lastSeq?: number;
  /**
   * CX_TRIGGERS' last sequence before `state` was taken: every trigger fired after `state` was
   * published above it (0 without NATS). Recovery reads the trigger ids from there on.
   */
  triggersSeq: number;
  /** Wall-clock time of the checkpoint (ms), for metrics and logs. */
  createdAt: number;
  /** Id of the full record the worker's chain starts with (a full record's own id). */
  base: string;
  /** 0: `state` is a full snapshot; n ≥ 1: the n-th delta saved after the full record `base`. */
  delta: number;
  /** msgpack of `PartitionSnapshot` as the worker encoded it. */
  state: Uint8Array;
}

/**
 * A partition's latest checkpoint as `load` returns it: the fields of the chain's last record, with
 * `state` the full snapshot and `deltas` the deltas after it, oldest first (restore them in order).
 */
export type LoadedCheckpoint = CheckpointRecord & {
  deltas: Uint8Array[];
  /** Written by another instance of the deployment (or by a single instance before it): restore only, never extend. */
  foreign?: boolean;
  /** The stored name of a foreign record's full record. */
  object?: string;
};

/** A checkpoint that cannot be used as it is; the message says what to do. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  constructor(
    message: string,
    /** Where the checkpoint is (file or object name). */
    readonly where: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Whether `e` is a {@link CheckpointError}. */
export function isCheckpointError(e: unknown): e is CheckpointError {
  return e instanceof Error && e.name === 'CheckpointError';
}

/** Durable storage of partition checkpoints. */
export interface CheckpointStore {
  /** Human-readable location, for logs. */
  readonly location: string;
  /**
   * Stores the record durably; resolves once durable. A full record replaces the partition's chain,
   * a delta extends it (its `base` must be the chain's and its `delta` the next number).
   */
  save(record: CheckpointRecord): Promise<void>;
  /** The partition's latest checkpoint, or null when it has none. @throws CheckpointError on an unreadable one */
  load(partition: number): Promise<LoadedCheckpoint | null>;
  /** Partitions that have a record. */
  partitions(): Promise<number[]>;
  /** Removes a partition's chain (its records of another grouping, once the current ones are stored). */
  remove(partition: number): Promise<void>;
  /**
   * The records of the deployment's other instances (several instances share it: docs/SCALING.md),
   * each marked `foreign`; absent for a store only one instance writes.
   */
  foreign?(): Promise<LoadedCheckpoint[]>;
  /** Removes a foreign record's chain (one newer records replace for every key group it holds). */
  removeForeign?(record: LoadedCheckpoint): Promise<void>;
}

/**
 * The chain of a full record and the deltas found next to it: deltas of an older chain (left by a
 * crash right after a full save) are ignored; a missing delta is an error, as the later ones' acks
 * went past it.
 */
function chainOf(full: CheckpointRecord, found: CheckpointRecord[], where: string): LoadedCheckpoint {
  const deltas = found.filter((d) => d.base === full.base).sort((a, b) => a.delta - b.delta);
  deltas.forEach((d, i) => {
    if (d.delta !== i + 1) {
      throw new CheckpointError(
        `checkpoint ${where}: delta ${i + 1} of the chain ${full.base} is missing (found ${d.delta}); ` +
          'delete the checkpoints and the durable consumer to rebuild state by replaying the stream',
        where,
      );
    }
  });
  const last = deltas.at(-1) ?? full;
  return { ...last, state: full.state, deltas: deltas.map((d) => d.state) };
}

/**
 * Encodes a record with its format header: the envelope's format version, the state's snapshot
 * format version and the cxstream version that wrote it, so an older cxstream can refuse state it
 * cannot read before any worker sees it, and say which version wrote it.
 */
export function encodeCheckpoint(record: CheckpointRecord): Uint8Array {
  return pack({
    format: FORMAT,
    version: CHECKPOINT_VERSION,
    snapshotVersion: SNAPSHOT_VERSION,
    writtenBy: cxstreamVersion,
    ...record,
  });
}

/** Compares two `major.minor.patch` versions (pre-release and build suffixes ignored). */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string) =>
    v
      .split(/[-+]/)[0]!
      .split('.')
      .map((n) => Number.parseInt(n, 10) || 0);
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

/** A newer writer whose format this version reads is logged once per process, not once per file. */
let newerWriterLogged = false;

/** Decodes a record, refusing other formats and versions. @throws CheckpointError */
export function decodeCheckpoint(bytes: Uint8Array, where: string): CheckpointRecord {
  let value: Record<string, unknown>;
  try {
    value = unpack(bytes) as Record<string, unknown>;
  } catch (e) {
    throw new CheckpointError(`checkpoint ${where} is not readable (truncated or not a checkpoint)`, where, {
      cause: e,
    });
  }
  if (value === null || typeof value !== 'object' || value.format !== FORMAT) {
    throw new CheckpointError(`${where} is not a cxstream checkpoint`, where);
  }
  const writtenBy = typeof value.writtenBy === 'string' ? value.writtenBy : undefined;
  const snapshotVersion = value.snapshotVersion;
  const unreadable = !READABLE_VERSIONS.includes(value.version)
    ? `checkpoint format version ${String(value.version)} (this cxstream reads versions ${READABLE_VERSIONS.join(', ')})`
    : snapshotVersion !== undefined && !READABLE_SNAPSHOT_VERSIONS.includes(snapshotVersion as number)
      ? `state format version ${String(snapshotVersion)} (this cxstream reads versions ${READABLE_SNAPSHOT_VERSIONS.join(', ')})`
      : null;
  if (unreadable !== null) {
    const newer =
      writtenBy !== undefined && compareVersions(writtenBy, cxstreamVersion) > 0
        ? `was written by cxstream ${writtenBy}, newer than this cxstream ${cxstreamVersion}, in ${unreadable}: ` +
          `an older cxstream cannot read the state of a newer one. Run cxstream ${writtenBy} or newer`
        : `has ${unreadable}${writtenBy ? `, written by cxstream ${writtenBy}` : ''}. Run the cxstream version that wrote it`;
    throw new CheckpointError(
      `checkpoint ${where} ${newer}, or delete the checkpoints and the durable consumer to rebuild state by ` +
        'replaying the stream (docs/OPERATIONS.md "Upgrade and downgrade")',
      where,
    );
  }
  if (writtenBy !== undefined && compareVersions(writtenBy, cxstreamVersion) > 0 && !newerWriterLogged) {
    newerWriterLogged = true;
    log.warn(
      { checkpoint: where, writtenBy, version: cxstreamVersion },
      `checkpoints were written by cxstream ${writtenBy}, newer than this ${cxstreamVersion}, in formats this version reads: using them`,
    );
  }
  const missing = ['partition', 'partitions', 'coveredSeq'].filter((k) => typeof value[k] !== 'number');
  if (!(value.state instanceof Uint8Array)) missing.push('state');
  if (missing.length > 0)
    throw new CheckpointError(`checkpoint ${where} is not readable: no ${missing.join(', ')}`, where);
  const { format: _f, version: _v, snapshotVersion: _s, writtenBy: _w, ...record } = value;
  return { base: '', delta: 0, ...record } as unknown as CheckpointRecord;
}

/**
 * Checkpoints as files in a directory: `partition-<n>.ckpt` (the full record) and
 * `partition-<n>.delta-<k>.ckpt` (its deltas). A save writes a temporary file, fsyncs it, renames
 * it into place (atomic) and fsyncs the directory, so after a crash each file is old or new, whole.
 * A full save then removes the previous chain's deltas.
 */
export class LocalCheckpointStore implements CheckpointStore {
  constructor(readonly dir: string) {}

  get location(): string {
    return this.dir;
  }

  async save(record: CheckpointRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const file = join(this.dir, fileName(record.partition, record.delta));
    const tmp = `${file}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(encodeCheckpoint(record));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    // the rename itself is durable only once the directory entry is
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    if (record.delta === 0) {
      // the chain before this record; left behind by a crash they are ignored (another base)
      for (const k of await this.deltaNumbers(record.partition))
        await rm(join(this.dir, fileName(record.partition, k)), { force: true });
    }
  }

  async load(partition: number): Promise<LoadedCheckpoint | null> {
    const full = await this.read(join(this.dir, fileName(partition, 0)));
    if (full === null) return null;
    const deltas: CheckpointRecord[] = [];
    for (const k of await this.deltaNumbers(partition)) {
      const delta = await this.read(join(this.dir, fileName(partition, k)));
      if (delta !== null) deltas.push(delta);
    }
    return chainOf(full, deltas, join(this.dir, fileName(partition, 0)));
  }

  async remove(partition: number): Promise<void> {
    for (const k of await this.deltaNumbers(partition))
      await rm(join(this.dir, fileName(partition, k)), { force: true });
    await rm(join(this.dir, fileName(partition, 0)), { force: true });
  }

  async partitions(): Promise<number[]> {
    const names = await this.names();
    // leftovers of a crash in the middle of a save are never read: remove them
    for (const n of names)
      if (/^partition-\d+\.(delta-\d+\.)?ckpt\.tmp-\d+$/.test(n))
        await rm(join(this.dir, n), { force: true });
    return names
      .map((n) => /^partition-(\d+)\.ckpt$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private async read(file: string): Promise<CheckpointRecord | null> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CheckpointError(`cannot read checkpoint ${file}: ${(e as Error).message}`, file, {
        cause: e,
      });
    }
    return decodeCheckpoint(bytes, file);
  }

  private async deltaNumbers(partition: number): Promise<number[]> {
    const pattern = new RegExp(`^partition-${partition}\\.delta-(\\d+)\\.ckpt$`);
    return (await this.names())
      .map((n) => pattern.exec(n)?.[1])
      .filter((k): k is string => k !== undefined)
      .map(Number);
  }

  private async names(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }
}

/** File of a partition's full record (`delta` 0) or of its `delta`-th delta. */
function fileName(partition: number, delta: number): string {
  return delta === 0 ? `partition-${partition}.ckpt` : `partition-${partition}.delta-${delta}.ckpt`;
}

/** Options of {@link NatsCheckpointStore.open}. */
export interface NatsCheckpointStoreOptions {
  /** Object store bucket. @default 'cx_checkpoints' */
  bucket?: string;
  /** Stream replicas of the bucket when it is created (3 in a 3-node cluster). @default 1 */
  replicas?: number;
  /**
   * Several instances share the bucket: this one's records are `<deployment>/<instance>/partition-<n>`,
   * and `foreign()` reads the deployment's other instances' (and the unscoped records of a single
   * instance before them). Names: letters, digits, `_` and `-`.
   */
  scope?: { deployment: string; instance: string };
}

/**
 * Checkpoints as objects `partition-<n>` (the full record) and `partition-<n>.delta-<k>` (its deltas)
 * in a NATS object store (file storage): any instance connected to the cluster can load a
 * partition's latest checkpoint. A put is acknowledged by JetStream once stored (replicated when the
 * bucket has replicas). A full save then deletes the previous chain's deltas.
 */
export class NatsCheckpointStore implements CheckpointStore {
  private constructor(
    private readonly store: ObjectStore,
    readonly location: string,
    /** Lists the object names from the stream's subjects (see `names`). */
    private readonly jsm: JetStreamManager,
    private readonly bucket: string,
    /** `<deployment>/<instance>/` of a scoped store, else ''. */
    private readonly prefix: string,
    /** `<deployment>/` of a scoped store. */
    private readonly deployment: string,
  ) {}

  /** Opens the bucket, creating it when missing. */
  static async open(nc: NatsConnection, opts: NatsCheckpointStoreOptions = {}): Promise<NatsCheckpointStore> {
    const bucket = opts.bucket ?? 'cx_checkpoints';
    const store = await new Objm(nc).create(bucket, {
      storage: StorageType.File,
      replicas: opts.replicas ?? 1,
    });
    const { scope } = opts;
    const jsm = await jetstreamManager(nc);
    return scope
      ? new NatsCheckpointStore(
          store,
          `nats object store ${bucket} (${scope.deployment}/${scope.instance})`,
          jsm,
          bucket,
          `${scope.deployment}/${scope.instance}/`,
          `${scope.deployment}/`,
        )
      : new NatsCheckpointStore(store, `nats object store ${bucket}`, jsm, bucket, '', '');
  }

  async save(record: CheckpointRecord): Promise<void> {
    await this.store.putBlob({ name: this.name(record.partition, record.delta) }, encodeCheckpoint(record));
    if (record.delta === 0)
      for (const k of await this.deltaNumbers(record.partition))
        await this.store.delete(this.name(record.partition, k));
  }

  async load(partition: number): Promise<LoadedCheckpoint | null> {
    const full = await this.read(this.name(partition, 0));
    if (full === null) return null;
    const deltas: CheckpointRecord[] = [];
    for (const k of await this.deltaNumbers(partition)) {
      const delta = await this.read(this.name(partition, k));
      if (delta !== null) deltas.push(delta);
    }
    return chainOf(full, deltas, `${this.location}/${this.name(partition, 0)}`);
  }

  async remove(partition: number): Promise<void> {
    for (const k of await this.deltaNumbers(partition)) await this.store.delete(this.name(partition, k));
    if ((await this.names()).includes(this.name(partition, 0)))
      await this.store.delete(this.name(partition, 0));
  }

  async partitions(): Promise<number[]> {
    const pattern = new RegExp(`^${literal(this.prefix)}partition-(\\d+)$`);
    return (await this.names())
      .map((n) => pattern.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  async foreign(): Promise<LoadedCheckpoint[]> {
    if (this.prefix === '') return [];
    const names = await this.names();
    // the deployment's other instances' full records, and those of a single instance before them
    const full = new RegExp(`^(?:${literal(this.deployment)}[^/]+/)?partition-\\d+$`);
    const out: LoadedCheckpoint[] = [];
    for (const name of names) {
      if (!full.test(name) || name.startsWith(this.prefix)) continue;
      const record = await this.read(name);
      if (record === null) continue;
      const deltas: CheckpointRecord[] = [];
      for (const n of names)
        if (n.startsWith(`${name}.delta-`)) {
          const delta = await this.read(n);
          if (delta !== null) deltas.push(delta);
        }
      try {
        out.push({ ...chainOf(record, deltas, `${this.location}/${name}`), foreign: true, object: name });
      } catch (e) {
        // a chain its writer is replacing right now: its newer record is read on the next recovery
        log.warn({ err: e, record: name }, 'checkpoint of another instance skipped: its chain is incomplete');
      }
    }
    return out;
  }

  async removeForeign(record: LoadedCheckpoint): Promise<void> {
    const name = record.object;
    if (name === undefined || !record.foreign) return;
    for (const n of await this.names()) if (n.startsWith(`${name}.delta-`)) await this.store.delete(n);
    await this.store.delete(name).catch(() => {});
  }

  /** The object of a partition's record in this store's scope. */
  private name(partition: number, delta: number): string {
    return objectName(this.prefix, partition, delta);
  }

  private async read(name: string): Promise<CheckpointRecord | null> {
    const bytes = await this.readObject(name);
    return bytes === null ? null : decodeCheckpoint(bytes, `${this.location}/${name}`);
  }

  /**
   * An object's bytes, or null when it does not exist. An object replaced while it is read (another
   * instance's next checkpoint) loses its chunks, and the client would wait for them forever: a read
   * that stalls is cancelled and started over, on the new object.
   */
  private async readObject(name: string): Promise<Uint8Array | null> {
    for (let attempt = 1; ; attempt++) {
      const result = await this.store.get(name);
      if (result === null) return null;
      const reader = result.data.getReader();
      let stalled = false;
      const timer = setTimeout(() => {
        stalled = true;
        void reader.cancel('stalled');
      }, OBJECT_READ_STALL_MS);
      const chunks: Uint8Array[] = [];
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          chunks.push(value);
        }
      } finally {
        clearTimeout(timer);
      }
      const failed = stalled ? 'stalled' : await result.error;
      if (!failed) return Buffer.concat(chunks);
      if (attempt >= 5)
        throw new CheckpointError(
          `cannot read checkpoint ${this.location}/${name}: ${String(failed)}`,
          `${this.location}/${name}`,
        );
      log.warn({ object: name, attempt, problem: String(failed) }, 'reading a checkpoint object again');
    }
  }

  private async deltaNumbers(partition: number): Promise<number[]> {
    const pattern = new RegExp(`^${literal(this.prefix)}partition-${partition}\\.delta-(\\d+)$`);
    return (await this.names())
      .map((n) => pattern.exec(n)?.[1])
      .filter((k): k is string => k !== undefined)
      .map(Number);
  }

  /**
   * The objects there are. Read from the stream's metadata subjects in one request to its leader:
   * the client's `list()` follows a consumer that can end early while a cluster node restarts, and an
   * object missing from a listing would restore key groups from older records. A deleted object keeps
   * its metadata subject (marked deleted): those are left out.
   */
  private async names(): Promise<string[]> {
    const prefix = `$O.${this.bucket}.M.`;
    const info = await this.jsm.streams.info(`OBJ_${this.bucket}`, { subjects_filter: `${prefix}>` });
    const out: string[] = [];
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const name = Buffer.from(subject.slice(prefix.length), 'base64url').toString('utf8');
      const meta = await this.store.info(name);
      if (meta !== null && !meta.deleted) out.push(name);
    }
    return out;
  }
}

/** A checkpoint object whose chunks stop arriving this long is read again (it was replaced meanwhile). */
const OBJECT_READ_STALL_MS = 5000;

/** Object of a partition's full record (`delta` 0) or of its `delta`-th delta, after the scope's prefix. */
function objectName(prefix: string, partition: number, delta: number): string {
  return delta === 0 ? `${prefix}partition-${partition}` : `${prefix}partition-${partition}.delta-${delta}`;
}

/** Escapes a name for a regular expression. */
function literal(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
