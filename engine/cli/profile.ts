/**
 * `cxstream profile CUSTOMER`: a customer's profile as the engine stored it in the KV bucket
 * `cx_profiles`, and the key it is stored under (the mapping of docs/CONTRACT.md "Profiles").
 */
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { PROFILE_BUCKET, profileKey } from '../../sinks/profileStore.js';
import { loadConfig } from '../config/config.js';
import { connectNats } from '../nats/connect.js';
import { natsNames } from '../nats/streams.js';

/** Options of {@link runProfile}. */
export interface ProfileOptions {
  customer: string;
  config?: string;
  /** Print only the KV key (no NATS needed). @default false */
  keyOnly?: boolean;
  /** @default process.stdout */
  out?: { write(text: string): unknown };
}

/** A customer without a stored profile (exit code 1). */
export class ProfileNotFoundError extends Error {
  override name = 'ProfileNotFoundError';
  constructor(
    readonly customer: string,
    readonly key: string,
    detail: string,
  ) {
    super(
      `no profile for customer ${JSON.stringify(customer)} (key ${key}) in bucket ${PROFILE_BUCKET}: ${detail}`,
    );
  }
}

/** Prints the profile JSON (stdout), or only the key with `keyOnly`. */
export async function runProfile(options: ProfileOptions): Promise<unknown> {
  const out = options.out ?? process.stdout;
  const key = profileKey(options.customer);
  if (options.keyOnly) {
    out.write(`${key}\n`);
    return key;
  }
  const config = loadConfig(options.config);
  const nc = await connectNats(config);
  try {
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(natsNames.profileStream);
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound)
        throw new ProfileNotFoundError(
          options.customer,
          key,
          'the bucket does not exist yet (run `cxstream setup`, or start the engine)',
        );
      throw e;
    }
    const kv = await new Kvm(nc).open(PROFILE_BUCKET);
    const entry = await kv.get(key);
    if (entry?.operation !== 'PUT' || entry.length === 0)
      throw new ProfileNotFoundError(
        options.customer,
        key,
        'none stored yet (the engine writes a profile once the customer has events, at most once a minute of event time)',
      );
    const profile: unknown = entry.json();
    out.write(`${JSON.stringify(profile, null, 2)}\n`);
    return profile;
  } finally {
    await nc.close();
  }
}
