/**
 * An operator-mode NATS setup for credential-file tests: an operator, a system account, an
 * application account with JetStream, and a user of it whose creds file (JWT + seed) is written
 * for the client; the server conf preloads the account JWTs (`resolver: MEMORY`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
} from '@nats-io/jwt';

/** What a test needs of an operator-mode setup. */
export interface OperatorSetup {
  /** Lines for the server conf (`NatsServer.start({ extraConf })`). */
  conf: string[];
  /** The user's creds file. */
  credsFile: string;
  /** The user's seed (the secret inside the creds file). */
  userSeed: string;
}

/** Writes the creds file into `dir` and returns the conf lines of the server. */
export async function operatorSetup(dir: string): Promise<OperatorSetup> {
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const user = createUser();
  const operatorJwt = await encodeOperator('cx-operator', operator, {
    system_account: system.getPublicKey(),
  });
  const systemJwt = await encodeAccount('SYS', system, {}, { signer: operator });
  const accountJwt = await encodeAccount(
    'CX',
    account,
    {
      limits: {
        subs: -1,
        data: -1,
        payload: -1,
        imports: -1,
        exports: -1,
        wildcards: true,
        conn: -1,
        leaf: -1,
        mem_storage: -1,
        disk_storage: -1,
        streams: -1,
        consumer: -1,
      },
    },
    { signer: operator },
  );
  const userJwt = await encodeUser('cxstream', user, account);
  const credsFile = join(dir, 'cxstream.creds');
  writeFileSync(credsFile, fmtCreds(userJwt, user));
  const q = JSON.stringify;
  return {
    conf: [
      `operator: ${q(operatorJwt)}`,
      `system_account: ${q(system.getPublicKey())}`,
      'resolver: MEMORY',
      `resolver_preload: { ${q(system.getPublicKey())}: ${q(systemJwt)}, ${q(account.getPublicKey())}: ${q(accountJwt)} }`,
    ],
    credsFile,
    userSeed: new TextDecoder().decode(user.getSeed()),
  };
}
