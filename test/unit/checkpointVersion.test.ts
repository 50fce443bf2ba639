/**
 * Upgrade safety: a checkpoint records the cxstream version that wrote it and the formats of its
 * envelope and state; an older cxstream refuses a format it does not know and says which version
 * wrote it, and reads a newer writer's checkpoint when the formats are ones it reads.
 */
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  type CheckpointRecord,
  compareVersions,
  decodeCheckpoint,
  encodeCheckpoint,
  isCheckpointError,
} from '../../engine/checkpoint/checkpointStore.js';
import { cxstreamVersion } from '../../engine/config/config.js';
import { SNAPSHOT_VERSION } from '../../operators/partitionState.js';

const record: CheckpointRecord = {
  partition: 0,
  partitions: 1,
  keyGroups: 128,
  kgs: [0, 1, 2],
  coveredSeq: 10,
  triggersSeq: 0,
  createdAt: 1,
  base: 'b1',
  delta: 0,
  state: new Uint8Array([1, 2, 3]),
};

/** The record's fields and bytes (msgpack gives the bytes back as a Buffer). */
function same(decoded: CheckpointRecord): boolean {
  const { state, ...rest } = decoded;
  const { state: expected, ...fields } = record;
  expect(rest).toEqual(fields);
  return Buffer.from(state).equals(Buffer.from(expected));
}

function failure(bytes: Uint8Array): Error {
  try {
    decodeCheckpoint(bytes, 'state/partition-0.ckpt');
  } catch (e) {
    expect(isCheckpointError(e)).toBe(true);
    return e as Error;
  }
  throw new Error('expected a CheckpointError');
}

describe('checkpoint versions', () => {
  it('records the writer and the formats, and reads its own records back unchanged', () => {
    const bytes = encodeCheckpoint(record);
    const raw = unpack(bytes) as Record<string, unknown>;
    expect(raw).toMatchObject({
      format: 'cxstream.checkpoint',
      version: 3,
      snapshotVersion: SNAPSHOT_VERSION,
      writtenBy: cxstreamVersion,
    });
    expect(same(decodeCheckpoint(bytes, 'x'))).toBe(true);
  });

  it('refuses a newer format, naming the newer cxstream that wrote it', () => {
    const e = failure(pack({ format: 'cxstream.checkpoint', version: 4, writtenBy: '99.0.0', ...record }));
    expect(e.message).toBe(
      `checkpoint state/partition-0.ckpt was written by cxstream 99.0.0, newer than this cxstream ${cxstreamVersion}, ` +
        'in checkpoint format version 4 (this cxstream reads versions 1, 2, 3): an older cxstream cannot read the state ' +
        'of a newer one. Run cxstream 99.0.0 or newer, or delete the checkpoints and the durable consumer to rebuild ' +
        'state by replaying the stream (docs/OPERATIONS.md "Upgrade and downgrade")',
    );
    // the state inside may be the newer part: refused before any worker sees it
    const state = failure(
      pack({ format: 'cxstream.checkpoint', version: 3, snapshotVersion: 9, writtenBy: '99.0.0', ...record }),
    );
    expect(state.message).toContain('in state format version 9 (this cxstream reads versions 2, 3, 4, 5, 6)');
  });

  it('reads a newer writer whose formats it knows (a downgrade after an upgrade that kept them)', () => {
    const bytes = pack({
      format: 'cxstream.checkpoint',
      version: 2,
      snapshotVersion: SNAPSHOT_VERSION,
      writtenBy: '99.0.0',
      ...record,
    });
    expect(same(decodeCheckpoint(bytes, 'x'))).toBe(true);
  });

  it('refuses a record of a readable version that lacks its state, naming what is missing', () => {
    const e = failure(pack({ format: 'cxstream.checkpoint', version: 3, partition: 0, partitions: 2 }));
    expect(e.message).toBe('checkpoint state/partition-0.ckpt is not readable: no coveredSeq, state');
  });

  it('compareVersions', () => {
    expect(compareVersions('0.1.0', '0.1.0')).toBe(0);
    expect(compareVersions('0.10.0', '0.9.9')).toBeGreaterThan(0);
    expect(compareVersions('1.0.0-rc.1', '1.0.0')).toBe(0);
    expect(compareVersions('0.1.0', '0.2.0')).toBeLessThan(0);
  });
});
