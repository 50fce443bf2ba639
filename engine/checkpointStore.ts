/**
 * Where partition checkpoints live: a local directory (embedded mode, `CXSTREAM_STATE_DIR`) or a
 * NATS object store (clustered: another instance can take a partition over). One record per
 * partition, replaced as a whole; a record is durable once `save` resolves.
 */
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageType } from '@nats-io/jetstream';
import { type ObjectStore, Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { pack, unpack } from 'msgpackr';

/** Checkpoint envelope format this code writes and reads. */
export const CHECKPOINT_VERSION = 1;
const FORMAT = 'cxstream.checkpoint';

/** One partition's checkpoint: its encoded state and the stream positions it stands for. */
export interface CheckpointRecord {
  partition: number;
  /** Partition count of the deployment that wrote it: state is keyed by hash(customer) mod this. */
  partitions: number;
  /** Every event of this partition with a stream sequence at or below this is in `state`. */
  coveredSeq: number;
  /** Highest sequence `state` applied (`PartitionSnapshot.lastSeq`), ≥ coveredSeq's events of this partition. */
  lastSeq: number;
  /**
   * CX_TRIGGERS' last sequence before `state` was taken: every trigger fired after `state` was
   * published above it (0 without NATS). Recovery reads the trigger ids from there on.
   */
  triggersSeq: number;
  /** Wall-clock time of the checkpoint (ms), for metrics and logs. */
  createdAt: number;
  /** msgpack of `PartitionSnapshot` as the worker encoded it. */
  state: Uint8Array;
}

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
  /** Stores the record durably, replacing the partition's previous one; resolves once durable. */
  save(record: CheckpointRecord): Promise<void>;
  /** The partition's latest record, or null when it has none. @throws CheckpointError on an unreadable one */
  load(partition: number): Promise<CheckpointRecord | null>;
  /** Partitions that have a record. */
  partitions(): Promise<number[]>;
}

/** Encodes a record with its format header. */
export function encodeCheckpoint(record: CheckpointRecord): Uint8Array {
  return pack({ format: FORMAT, version: CHECKPOINT_VERSION, ...record });
}

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
  if (value.version !== CHECKPOINT_VERSION) {
    throw new CheckpointError(
      `checkpoint ${where} has format version ${String(value.version)}; this cxstream reads version ` +
        `${CHECKPOINT_VERSION}. Run the cxstream version that wrote it, or delete the checkpoints and the ` +
        'durable consumer to rebuild state by replaying the stream (docs/DELIVERY.md)',
      where,
    );
  }
  const { format: _f, version: _v, ...record } = value;
  return record as unknown as CheckpointRecord;
}

/**
 * Checkpoints as files `partition-<n>.ckpt` in a directory. A save writes a temporary file,
 * fsyncs it, renames it over the old one (atomic) and fsyncs the directory, so after a crash a
 * partition has either its old or its new checkpoint, whole.
 */
export class LocalCheckpointStore implements CheckpointStore {
  constructor(readonly dir: string) {}

  get location(): string {
    return this.dir;
  }

  async save(record: CheckpointRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const file = this.file(record.partition);
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
  }

  async load(partition: number): Promise<CheckpointRecord | null> {
    const file = this.file(partition);
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

  async partitions(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    // leftovers of a crash in the middle of a save are never read: remove them
    for (const n of names)
      if (/^partition-\d+\.ckpt\.tmp-\d+$/.test(n)) await rm(join(this.dir, n), { force: true });
    return names
      .map((n) => /^partition-(\d+)\.ckpt$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private file(partition: number): string {
    return join(this.dir, `partition-${partition}.ckpt`);
  }
}

/** Options of {@link NatsCheckpointStore.open}. */
export interface NatsCheckpointStoreOptions {
  /** Object store bucket. @default 'cx_checkpoints' */
  bucket?: string;
  /** Stream replicas of the bucket when it is created (3 in a 3-node cluster). @default 1 */
  replicas?: number;
}

/**
 * Checkpoints as objects `partition-<n>` in a NATS object store (file storage): any instance
 * connected to the cluster can load a partition's latest checkpoint. A put is acknowledged by
 * JetStream once stored (replicated when the bucket has replicas).
 */
export class NatsCheckpointStore implements CheckpointStore {
  private constructor(
    private readonly store: ObjectStore,
    readonly location: string,
  ) {}

  /** Opens the bucket, creating it when missing. */
  static async open(nc: NatsConnection, opts: NatsCheckpointStoreOptions = {}): Promise<NatsCheckpointStore> {
    const bucket = opts.bucket ?? 'cx_checkpoints';
    const store = await new Objm(nc).create(bucket, {
      storage: StorageType.File,
      replicas: opts.replicas ?? 1,
    });
    return new NatsCheckpointStore(store, `nats object store ${bucket}`);
  }

  async save(record: CheckpointRecord): Promise<void> {
    await this.store.putBlob({ name: name(record.partition) }, encodeCheckpoint(record));
  }

  async load(partition: number): Promise<CheckpointRecord | null> {
    const where = `${this.location}/${name(partition)}`;
    const bytes = await this.store.getBlob(name(partition));
    return bytes === null ? null : decodeCheckpoint(bytes, where);
  }

  async partitions(): Promise<number[]> {
    const infos = await this.store.list();
    return infos
      .filter((i) => !i.deleted)
      .map((i) => /^partition-(\d+)$/.exec(i.name)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }
}

function name(partition: number): string {
  return `partition-${partition}`;
}
