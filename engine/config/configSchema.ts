import { type Static, type TSchema, Type } from 'typebox';
import { MASK_KINDS } from '../../operators/mask.js';
import {
  DEFAULT_MASK_FIELDS,
  MASK_FIELD_PATTERN,
  UNMASKED_PAYLOAD_PATTERN,
} from '../../operators/privacy.js';

/*
 * The schema below is the one definition of the configuration: the TypeScript type (`Config`), the
 * defaults (`default` of each key, filled in by ajv's `useDefaults`), the environment variables
 * (one per leaf: `CXSTREAM_` + its path in upper snake case) and the validation with its messages
 * all derive from it. `config/default.yaml` documents the same keys for people.
 *
 * Two annotations steer the messages: `writeOnly` marks a secret (its value is never printed), and
 * `hint` says what a value must look like when a pattern does not match.
 */

/** A string that is one of `values` (a plain JSON-schema enum: ajv's messages for it are one line). */
function oneOf<const V extends readonly string[]>(
  values: V,
  options: { default: V[number]; description: string },
) {
  return Type.Unsafe<V[number]>({ type: 'string', enum: [...values], ...options });
}

/** A section: an object of known keys whose missing keys take their defaults. */
function section<P extends Record<string, TSchema>>(properties: P, description: string) {
  return Type.Object(properties, { additionalProperties: false, default: {}, description });
}

/** An optional secret or path: '' means not set (environment variables cannot unset a key). */
function optionalString(description: string, options: { secret?: boolean } = {}) {
  return Type.String({ default: '', description, ...(options.secret && { writeOnly: true }) });
}

const DAY = 86_400_000;

/** Limits of one JetStream stream the engine creates (`cxstream setup`, or `run` on first start). */
function streamLimits(description: string, maxAgeMs: number) {
  return section(
    {
      replicas: Type.Integer({
        minimum: 1,
        maximum: 5,
        default: 1,
        description: 'Stream replicas (3 on a 3-node cluster).',
      }),
      maxAgeMs: Type.Integer({
        minimum: 0,
        default: maxAgeMs,
        description: 'Messages older than this are removed (0 = kept forever).',
      }),
      maxBytes: Type.Integer({
        minimum: -1,
        default: -1,
        description: 'Oldest messages are removed beyond this size in bytes (-1 = no limit).',
      }),
      duplicateWindowMs: Type.Integer({
        minimum: 100,
        default: 600_000,
        description:
          'Nats-Msg-Id de-duplication window; the engine warns at start when an existing stream has a shorter one.',
      }),
    },
    description,
  );
}

/** The configuration's schema; `config/default.yaml` documents every key for people. */
export const configSchema = Type.Object(
  {
    nats: section(
      {
        url: Type.String({
          minLength: 1,
          default: 'nats://127.0.0.1:4222',
          description:
            'Server(s), comma separated: nats://host:port, or tls://host:port to require TLS. Credentials in a URL (nats://user:pass@host) work but are better given below.',
        }),
        durable: Type.String({
          pattern: '^[A-Za-z0-9_-]+$',
          hint: 'letters, digits, _ and -',
          default: 'cxstream',
          description: 'Durable pull consumer on CX_EVENTS.',
        }),
        ackWaitMs: Type.Integer({
          minimum: 1000,
          default: 30_000,
          description: 'JetStream ack wait of the durable consumer.',
        }),
        maxInFlight: Type.Integer({
          minimum: 1,
          default: 100_000,
          description: 'Most events pulled and not yet acked (flow control).',
        }),
        maxOutageMs: Type.Integer({
          minimum: 1000,
          default: 300_000,
          description:
            'How long the engine rides through a NATS outage (sinks retried, the client reconnecting) before it gives up with exit code 1.',
        }),
        user: optionalString('User name (with password or passwordFile).'),
        password: optionalString('Password of `user`.', { secret: true }),
        passwordFile: optionalString('File holding the password of `user` (a mounted secret).'),
        token: optionalString('Authentication token.', { secret: true }),
        tokenFile: optionalString('File holding the authentication token.'),
        nkeySeed: optionalString('NKey seed (SU...) of an nkey user.', { secret: true }),
        nkeySeedFile: optionalString('File holding the NKey seed of an nkey user.'),
        creds: optionalString(
          'Credentials file (JWT and NKey seed, as `nsc` writes it) for operator-mode servers.',
        ),
        tls: section(
          {
            ca: optionalString('CA certificate file (PEM) that signed the server certificate.'),
            cert: optionalString('Client certificate file (PEM), for servers that verify clients.'),
            key: optionalString('Private key file (PEM) of the client certificate.'),
          },
          'TLS: used when any of these is set or a URL starts with tls://.',
        ),
      },
      'NATS connection, durable consumer and credentials.',
    ),
    streams: section(
      {
        events: streamLimits('CX_EVENTS: the input stream (subjects cx.events.>).', 7 * DAY),
        triggers: streamLimits('CX_TRIGGERS: the trigger stream (subjects cx.triggers.>).', 7 * DAY),
        deadLetters: streamLimits('CX_DLQ: dead letters (subjects cx.dlq.>).', 30 * DAY),
        profiles: section(
          {
            replicas: Type.Integer({ minimum: 1, maximum: 5, default: 1, description: 'Bucket replicas.' }),
            maxBytes: Type.Integer({
              minimum: -1,
              default: -1,
              description: 'Size limit of the bucket in bytes (-1 = no limit).',
            }),
          },
          'KV bucket cx_profiles (one value per customer).',
        ),
      },
      'Streams and buckets as the engine creates them; existing ones are left as they are (see `cxstream setup --update`).',
    ),
    clickhouse: section(
      {
        url: Type.String({
          pattern: '^(embedded:.+|https?://.+)$',
          hint: 'embedded:DIR or http(s)://user:pass@host:port/db',
          default: 'embedded:./.cxstream/clickhouse',
          description: '`embedded:DIR` (chDB in-process) or `http(s)://user:pass@host:port/db`.',
        }),
        cluster: Type.String({
          pattern: '^([A-Za-z_][A-Za-z0-9_]*)?$',
          hint: "a cluster name of the servers' remote_servers: letters, digits and _",
          default: '',
          description:
            "ClickHouse cluster (a server URL only): the schema is created ON CLUSTER it, as Replicated `<table>_local` tables under Distributed tables sharded by customer (docs/CLICKHOUSE.md). '' = one server.",
        }),
        flushIntervalMs: Type.Integer({
          minimum: 10,
          default: 1000,
          description: 'One insert per table per this interval at most.',
        }),
        maxBufferedRows: Type.Integer({
          minimum: 1000,
          default: 500_000,
          description: 'Beyond this the engine stops pulling (back-pressure).',
        }),
        serve: section(
          {
            port: Type.Integer({
              minimum: 0,
              maximum: 65535,
              default: 8123,
              description:
                'TCP port of the HTTP endpoint over the embedded store; 0 turns it off. When taken, any free port is used instead (logged, and written to cxstream-endpoint.json in the store).',
            }),
            host: Type.String({
              minLength: 1,
              default: '127.0.0.1',
              description: 'Address to bind; anything but a loopback address needs `password`.',
            }),
            user: Type.String({
              minLength: 1,
              default: 'default',
              description: 'User name required with `password`.',
            }),
            password: optionalString('When set, every request must authenticate as `user` with it.', {
              secret: true,
            }),
            maxResultRows: Type.Integer({
              minimum: 1,
              default: 1_000_000,
              description:
                'Most rows in one result (ClickHouse max_result_rows; a request may only lower it).',
            }),
            maxResultBytes: Type.Integer({
              minimum: 1,
              default: 100_000_000,
              description: 'Most bytes in one result (max_result_bytes).',
            }),
            maxExecutionTimeSec: Type.Number({
              exclusiveMinimum: 0,
              default: 60,
              description: 'Longest a query may run, seconds (max_execution_time).',
            }),
            maxConcurrentQueries: Type.Integer({
              minimum: 1,
              maximum: 64,
              default: 2,
              description:
                "Queries run at once; more wait in line (they share the process with the engine's own inserts).",
            }),
          },
          "ClickHouse's HTTP interface over the embedded store, served read-only while this process holds it.",
        ),
      },
      'ClickHouse.',
    ),
    state: section(
      {
        dir: Type.String({
          minLength: 1,
          default: './.cxstream/state',
          description: 'Local directory for embedded checkpoints.',
        }),
      },
      'Local state.',
    ),
    checkpoint: section(
      {
        intervalMs: Type.Integer({
          minimum: 100,
          default: 2000,
          description:
            'Period of the partition checkpoints; events are acked only once a checkpoint covers them.',
        }),
        store: oneOf(['local', 'nats'], {
          default: 'local',
          description:
            '`local` (state.dir) or `nats` (object store `cx_checkpoints`, for clustered deployments).',
        }),
        replicas: Type.Integer({
          minimum: 1,
          maximum: 5,
          default: 1,
          description: 'Stream replicas of the `cx_checkpoints` bucket when cxstream creates it.',
        }),
        maxDeltas: Type.Integer({
          minimum: 0,
          default: 100,
          description:
            'Incremental checkpoints: deltas (changed customers only) after a full one before the next full one; 0 = every checkpoint full.',
        }),
      },
      'Checkpoints.',
    ),
    cluster: section(
      {
        deployment: Type.String({
          default: '',
          pattern: '^([A-Za-z0-9_-]{1,32})?$',
          hint: 'letters, digits, _ and -, at most 32',
          description:
            "Several instances share one deployment's key groups under this name (leases in the KV bucket cx_leases_<name>; docs/SCALING.md); '' = a single instance owns them all.",
        }),
        instance: Type.String({
          default: '',
          pattern: '^([A-Za-z0-9_-]{1,64})?$',
          hint: 'letters, digits, _ and -, at most 64',
          description:
            "This instance's name in the deployment, unique and stable across its restarts; '' = the host name.",
        }),
        leaseTtlMs: Type.Integer({
          minimum: 1000,
          maximum: 60_000,
          default: 5000,
          description:
            "A key group's lease lasts this long unless renewed: an instance that stops renewing (dead, cut off) loses its key groups after it, and stops processing them before.",
        }),
      },
      'Several engine instances sharing one deployment.',
    ),
    rules: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      default: ['config/rules.yaml'],
      description: 'Rule files (environment: comma separated).',
    }),
    engine: section(
      {
        partitions: Type.Integer({
          minimum: 0,
          maximum: 256,
          default: 0,
          description:
            'Partitions (one worker thread each); 0 = one per core less one for the main thread, at least 1.',
        }),
        keyGroups: Type.Integer({
          minimum: 1,
          maximum: 32_768,
          default: 128,
          description:
            'Key groups: the unit of state and checkpoints (customers hash to one); fixed for a deployment, at least the most workers (all instances) it will run.',
        }),
        batchMaxEvents: Type.Integer({
          minimum: 1,
          default: 1000,
          description: 'Most events per worker task.',
        }),
        defaultTz: Type.String({
          minLength: 1,
          default: 'Asia/Shanghai',
          description: 'Customer-local time zone when an event has no tz.',
        }),
        profileIntervalMs: Type.Integer({
          minimum: 0,
          default: 60_000,
          description: "A customer's profile is published at most this often (event time).",
        }),
        hotCustomers: Type.Integer({
          minimum: 0,
          default: 20_000,
          description:
            'Customers each worker keeps as objects; the least recently used beyond it are kept as msgpack bytes (~1 KB instead of ~6.6 KB) and decoded when an event, timer or publication needs them.',
        }),
        tickIntervalMs: Type.Integer({
          minimum: 100,
          default: 5000,
          description: 'How often due profiles are checked when traffic is quiet.',
        }),
        allowedLatenessMs: Type.Integer({
          minimum: 0,
          default: 5000,
          description: 'Watermark = highest event time seen − this; older events are late.',
        }),
        idleAfterMs: Type.Integer({
          minimum: 0,
          default: 10_000,
          description: "Wall-clock ms without events after which a partition's watermark follows the clock.",
        }),
        maxFutureSkewMs: Type.Integer({
          minimum: 0,
          default: 300_000,
          description:
            'Events whose ts is more than this ahead of the wall clock of their batch are dead-lettered: they would move the watermark into the future and fire every pending timer.',
        }),
        workerRestarts: Type.Integer({
          minimum: 0,
          default: 3,
          description:
            "Restarts in place of one partition's crashed worker thread allowed within 10 minutes; one more exits the engine (it recovers from its checkpoint on restart).",
        }),
        minEventTime: Type.String({
          pattern: '^\\d{4}-\\d{2}-\\d{2}([T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:?\\d{2})?)?$',
          hint: 'a date like 2000-01-01 or an ISO 8601 time like 2000-01-01T00:00:00Z',
          default: '2000-01-01',
          description:
            'Events with an earlier ts are dead-lettered: a ts in epoch seconds instead of milliseconds lands in 1970. A date alone is UTC midnight.',
        }),
      },
      'Partitions, batching and event time.',
    ),
    privacy: section(
      {
        maskFields: Type.Array(
          Type.String({
            pattern: MASK_FIELD_PATTERN,
            hint: `a field name, optionally with its kind (${MASK_KINDS.map((k) => `:${k}`).join(', ')})`,
          }),
          {
            default: [...DEFAULT_MASK_FIELDS],
            description:
              'Event fields that may carry personal data (environment: comma separated): masked in ClickHouse rows, trigger payloads and profiles. FIELD or FIELD:KIND; the kind is text (by pattern, the default) or name, phone, email, address (the value masked whole); a field named like a kind has that kind.',
          },
        ),
        unmaskedPayload: Type.Array(
          Type.String({
            pattern: UNMASKED_PAYLOAD_PATTERN,
            hint: 'SUBJECT:FIELD, e.g. cx.triggers.callback_request:phone',
          }),
          {
            default: [],
            description:
              "SUBJECT:FIELD pairs: a rule's payload entry named FIELD, on triggers published to SUBJECT, carries the event's FIELD as sent (environment: comma separated).",
          },
        ),
      },
      'Masking of personal data (docs/PRIVACY.md).',
    ),
    identity: section(
      {
        enabled: Type.Boolean({
          default: true,
          description:
            "Identity stitching: an event's `ids` link customer keys into one customer (docs/IDENTITY.md); false ignores `ids`.",
        }),
        maxKeysPerId: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 3,
          description:
            'Customer keys one identifier may link; the one more that presents it makes it shared (a shop tablet, a call-center number), and it links nobody from then on.',
        }),
        maxIds: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 16,
          description: 'Identifiers one event may carry; an event with more is dead-lettered.',
        }),
        maxIdLength: Type.Integer({
          minimum: 1,
          maximum: 65536,
          default: 256,
          description: 'Longest identifier value (characters); an event with a longer one is dead-lettered.',
        }),
      },
      'Identity stitching (docs/IDENTITY.md).',
    ),
    metrics: section(
      {
        port: Type.Integer({
          minimum: 0,
          maximum: 65535,
          default: 9464,
          description: 'HTTP port of /metrics, /healthz, /readyz and the admin actions; 0 turns it off.',
        }),
        host: Type.String({
          minLength: 1,
          default: '127.0.0.1',
          description: 'Address the HTTP server listens on; 0.0.0.0 for every interface (then set a token).',
        }),
        token: optionalString('Bearer token for /metrics and the admin actions (probes never need one).', {
          secret: true,
        }),
        tokenFile: optionalString('File holding that token.'),
      },
      'The HTTP server: Prometheus metrics, probes, admin actions.',
    ),
    log: section(
      {
        level: oneOf(['', 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
          default: '',
          description:
            "Log level of the JSON log lines on stderr; '' = the command's: info for `run`, warn for the other commands (their report is on stdout).",
        }),
      },
      'Logging.',
    ),
  },
  { additionalProperties: false },
);

/** The engine's configuration, as in `config/default.yaml` (every key documented in {@link configSchema}). */
export type Config = Static<typeof configSchema>;

/** The parts of a JSON schema node that the environment walk and the messages read. */
export interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  default?: unknown;
  /** A secret: its value is never printed. */
  writeOnly?: boolean;
  /** What a value must look like, for pattern errors. */
  hint?: string;
}

/** {@link configSchema} as the plain JSON schema it is (TypeBox schemas are plain objects). */
export const configSchemaNode = configSchema as unknown as SchemaNode;
