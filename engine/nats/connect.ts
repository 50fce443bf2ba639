import { readFileSync } from 'node:fs';
import {
  type Authenticator,
  type ConnectionOptions,
  connect,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
  type TlsOptions,
} from '@nats-io/transport-node';
import type { Config } from '../config/config.js';
import { envName, settingName } from '../config/environment.js';
import { SettingError } from '../config/errors.js';
import { redactUrls, withoutSecrets } from '../config/redact.js';
import { hideInLogs } from '../runtime/log.js';

/** The NATS part of the config. */
type NatsSettings = Pick<Config, 'nats'>;

/** What {@link natsConnectionOptions} resolved, with the secrets to keep out of messages. */
export interface ResolvedNatsOptions {
  options: ConnectionOptions;
  /** Passwords, tokens and seeds in use: removed from any error text before it is shown. */
  secrets: string[];
  /** The server list as it may be printed (credentials of URLs replaced). */
  printableServers: string;
  /** How the connection authenticates, for messages: `user/password`, `token`, `nkey`, `creds`, `none`. */
  auth: string;
}

/**
 * The connection options of the config: servers (credentials in a URL are taken out of it and used
 * as user/password or token), one way to authenticate (user/password, token, NKey seed or a creds
 * file, each from the config, its environment variable or a file), and TLS (CA, client certificate)
 * when configured or when a URL starts with `tls://`. Files are read here, so a missing one is a
 * clear error before any connection attempt. Secrets never come from the command line.
 * @throws SettingError naming the setting when a file cannot be read
 */
export function natsConnectionOptions(config: Readonly<NatsSettings>): ResolvedNatsOptions {
  const { nats } = config;
  const secrets: string[] = [];
  let requireTls = false;
  let urlUser: string | undefined;
  let urlPass: string | undefined;
  const servers = nats.url
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((server) => {
      if (/^tls:\/\//i.test(server)) requireTls = true;
      const m = /^([a-z][a-z0-9+.-]*:\/\/)?(?:([^@/]*)@)?(.*)$/i.exec(server)!;
      const [, scheme = '', userinfo, rest = ''] = m;
      if (userinfo !== undefined) {
        const colon = userinfo.indexOf(':');
        urlUser = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
        urlPass = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
      }
      // nats.js ignores the scheme; TLS is asked for below
      return `${scheme.toLowerCase() === 'tls://' ? 'nats://' : scheme}${rest}`;
    });

  const options: ConnectionOptions = {
    servers,
    name: 'cxstream',
    maxReconnectAttempts: -1,
    // Otherwise every request (each trigger publish, each KV put) captures a stack trace for its
    // possible timeout error: a third of the main thread's time in bench:e2e (bench/RESULTS.md).
    noAsyncTraces: true,
  };

  let auth = 'none';
  const password = nats.password || readSecretFile(nats.passwordFile, 'nats.passwordFile');
  const token = nats.token || readSecretFile(nats.tokenFile, 'nats.tokenFile');
  const seed = nats.nkeySeed || readSecretFile(nats.nkeySeedFile, 'nats.nkeySeedFile');
  if (nats.user !== '') {
    options.user = nats.user;
    options.pass = password;
    secrets.push(password);
    auth = 'user/password';
  } else if (token !== '') {
    options.token = token;
    secrets.push(token);
    auth = 'token';
  } else if (seed !== '') {
    const authenticator: Authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
    options.authenticator = authenticator;
    secrets.push(seed);
    auth = 'nkey';
  } else if (nats.creds !== '') {
    const creds = readFile(nats.creds, 'nats.creds');
    options.authenticator = credsAuthenticator(creds);
    // the seed line of the creds file is the secret (the JWT is signed, not secret, but long)
    const seedLine = /\bSU[A-Z2-7]{50,}\b/.exec(new TextDecoder().decode(creds))?.[0];
    if (seedLine) secrets.push(seedLine);
    auth = 'creds';
  } else if (urlUser !== undefined) {
    if (urlPass === undefined) {
      options.token = urlUser;
      secrets.push(urlUser);
      auth = 'token';
    } else {
      options.user = urlUser;
      options.pass = urlPass;
      secrets.push(urlPass);
      auth = 'user/password';
    }
  }

  const { ca, cert, key } = nats.tls;
  if (requireTls || ca !== '' || cert !== '') {
    const tls: TlsOptions = {};
    if (ca !== '') tls.ca = new TextDecoder().decode(readFile(ca, 'nats.tls.ca'));
    if (cert !== '') {
      tls.cert = new TextDecoder().decode(readFile(cert, 'nats.tls.cert'));
      tls.key = new TextDecoder().decode(readFile(key, 'nats.tls.key'));
    }
    options.tls = tls;
  }
  hideInLogs(...secrets);
  return { options, secrets: secrets.filter(Boolean), printableServers: redactUrls(nats.url), auth };
}

/** Connects to the NATS server(s) of the config. @throws SettingError naming the setting and the URL */
export async function connectNats(config: Readonly<NatsSettings>): Promise<NatsConnection> {
  const resolved = natsConnectionOptions(config);
  try {
    return await connect(resolved.options);
  } catch (e) {
    throw natsConnectError(e, resolved);
  }
}

/** A connection failure in words: which server, which setting, what to try; no secret. */
export function natsConnectError(e: unknown, resolved: ResolvedNatsOptions): SettingError {
  const err = e as Error & { code?: string; cause?: unknown };
  const cause = err.cause as (Error & { code?: string }) | undefined;
  const raw = withoutSecrets(
    `${err.message ?? String(e)}${cause?.message ? `: ${cause.message}` : ''}`,
    resolved.secrets,
  );
  const code = err.code ?? cause?.code ?? '';
  const where = `NATS at ${resolved.printableServers} (${settingName('nats.url')})`;
  const text = `${raw} ${code}`.toLowerCase();
  if (err.name === 'AuthorizationError' || /authorization violation|authentication/.test(text)) {
    return new SettingError(
      `${where} refused the credentials (${resolved.auth}): ${raw}. Check ${authSettings(resolved.auth)}.`,
      'nats.user',
      'NATS',
      false,
    );
  }
  if (
    /certificate|self[- ]signed|unable to verify|tls|ssl|handshake|wrong version number|eproto/.test(text)
  ) {
    return new SettingError(
      `${where}: TLS failed: ${raw}. Check ${settingName('nats.tls.ca')} (the CA that signed the server ` +
        `certificate), ${settingName('nats.tls.cert')}/${settingName('nats.tls.key')} when the server verifies ` +
        'clients, and that the URL is tls:// only for servers with TLS.',
      'nats.tls.ca',
      'NATS',
      false,
    );
  }
  if (/refused|econnrefused|enotfound|eai_again|timeout|ehostunreach|enetunreach/.test(text)) {
    // a server that verifies client certificates drops a client without one: it looks like a timeout
    const certHint =
      resolved.options.tls && !resolved.options.tls.cert
        ? ` If the server verifies client certificates, set ${settingName('nats.tls.cert')} and ${settingName('nats.tls.key')}.`
        : '';
    return new SettingError(
      `cannot connect to ${where}: ${raw}. Is nats-server running and reachable there? Start it (with JetStream: ` +
        `nats-server -js) or set ${envName(['nats', 'url'])}.${certHint}`,
      'nats.url',
      'NATS',
      true,
    );
  }
  return new SettingError(`cannot connect to ${where}: ${raw}`, 'nats.url', 'NATS', true);
}

function authSettings(auth: string): string {
  switch (auth) {
    case 'user/password':
      return `${settingName('nats.user')} and ${settingName('nats.password')} or ${settingName('nats.passwordFile')}`;
    case 'token':
      return `${settingName('nats.token')} or ${settingName('nats.tokenFile')}`;
    case 'nkey':
      return `${settingName('nats.nkeySeed')} or ${settingName('nats.nkeySeedFile')}`;
    case 'creds':
      return settingName('nats.creds');
    default:
      return `the server's authorization: it needs credentials (${settingName('nats.user')}, ${settingName('nats.token')}, ${settingName('nats.nkeySeedFile')} or ${settingName('nats.creds')})`;
  }
}

function readFile(path: string, setting: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new SettingError(
      `cannot read ${settingName(setting)} "${path}": ${(e as Error).message}`,
      setting,
      'file',
      false,
      { cause: e },
    );
  }
}

/** A secret kept in a file (a mounted Kubernetes or Docker secret): its text without the final newline. */
function readSecretFile(path: string, setting: string): string {
  if (path === '') return '';
  return new TextDecoder().decode(readFile(path, setting)).replace(/\r?\n$/, '');
}
