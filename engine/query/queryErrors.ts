/**
 * ClickHouse exceptions as the HTTP interface reports them: the status code of ClickHouse's own
 * `exceptionCodeToHTTPStatus`, the `X-ClickHouse-Exception-Code` header and a body in ClickHouse's
 * `Code: N. DB::Exception: message. (NAME)` form, which clients (clickhouse-js, clickhouse-go,
 * Grafana) parse into their error type.
 */

/** ClickHouse error codes this endpoint raises itself (the numbers of ClickHouse's ErrorCodes.cpp). */
export const ErrorCode = {
  BAD_ARGUMENTS: 36,
  NOT_IMPLEMENTED: 48,
  SYNTAX_ERROR: 62,
  UNKNOWN_COMPRESSION_METHOD: 89,
  READONLY: 164,
  REQUIRED_PASSWORD: 194,
  TOO_MANY_SIMULTANEOUS_QUERIES: 202,
  QUERY_IS_TOO_LARGE: 229,
  CANNOT_DECOMPRESS: 271,
  AUTHENTICATION_FAILED: 516,
  STD_EXCEPTION: 1001,
} as const;

/** Name of each code in {@link ErrorCode}, for the `(NAME)` at the end of a message. */
const NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

/**
 * HTTP status per ClickHouse error code, as ClickHouse's server maps them (src/Server/HTTP/
 * exceptionCodeToHTTPStatus.cpp); every other code is 500. One addition: READONLY (164) is 403, as
 * ClickHouse answered up to 20.x, because here it is the answer to a write on a read-only endpoint.
 */
const STATUS = new Map<number, number>([
  [194, 401], // REQUIRED_PASSWORD
  // UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED, SET_NON_GRANTED_ROLE, ACCESS_DENIED, READONLY
  ...[192, 193, 516, 512, 497, 164].map((c): [number, number] => [c, 403]),
  // BAD_ARGUMENTS, CANNOT_COMPILE_REGEXP, CANNOT_PARSE_{TEXT, ESCAPE_SEQUENCE, QUOTED_STRING, DATE,
  // DATETIME, NUMBER, DOMAIN_VALUE_FROM_STRING, IPV4, IPV6, INPUT_ASSERTION_FAILED, UUID},
  // DUPLICATE_COLUMN, ILLEGAL_COLUMN, UNKNOWN_ELEMENT_IN_AST, UNKNOWN_TYPE_OF_AST_NODE,
  // THERE_IS_NO_COLUMN, TOO_DEEP_AST, TOO_BIG_AST, UNEXPECTED_AST_STRUCTURE, SYNTAX_ERROR,
  // INCORRECT_DATA, TYPE_MISMATCH, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  ...[
    36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8, 167, 168, 223, 62, 117, 53,
    321,
  ].map((c): [number, number] => [c, 400]),
  // UNKNOWN_{TABLE, FUNCTION, IDENTIFIER, TYPE, STORAGE, DATABASE, SETTING, DIRECTION_OF_SORTING,
  // AGGREGATE_FUNCTION, FORMAT, DATABASE_ENGINE, TYPE_OF_QUERY, ROLE}
  ...[60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511].map((c): [number, number] => [c, 404]),
  [229, 413], // QUERY_IS_TOO_LARGE
  [48, 501], // NOT_IMPLEMENTED
  [209, 503], // SOCKET_TIMEOUT
  [76, 503], // CANNOT_OPEN_FILE
  [381, 411], // HTTP_LENGTH_REQUIRED
  [159, 408], // TIMEOUT_EXCEEDED
  [439, 503], // CANNOT_SCHEDULE_TASK
  [779, 415], // UNSUPPORTED_MEDIA_TYPE
]);

/** A ClickHouse exception raised by this endpoint or by the engine, with its code. */
export class QueryError extends Error {
  override readonly name = 'QueryError';

  /**
   * @param code ClickHouse error code
   * @param message the whole `Code: N. DB::Exception: ... (NAME)` text for errors of the engine, or
   *   just the message for the endpoint's own (the rest is added)
   */
  constructor(
    readonly code: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(
      message.startsWith('Code: ')
        ? message
        : `Code: ${code}. DB::Exception: ${message}. (${NAMES.get(code) ?? 'UNKNOWN_EXCEPTION'})`,
      options,
    );
  }

  /** HTTP status of this error. */
  get status(): number {
    return httpStatusOf(this.code);
  }
}

/** The HTTP status ClickHouse answers an exception with this code with. */
export function httpStatusOf(code: number): number {
  return STATUS.get(code) ?? 500;
}

/**
 * Any error of a query as a {@link QueryError}: chDB's errors carry the ClickHouse code
 * (`clickhouseCode`) and ClickHouse's message; anything else is STD_EXCEPTION.
 */
export function toQueryError(e: unknown): QueryError {
  if (e instanceof QueryError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { clickhouseCode?: unknown } | null)?.clickhouseCode;
  if (typeof code === 'number' && message.startsWith('Code: '))
    return new QueryError(code, message, { cause: e });
  return new QueryError(ErrorCode.STD_EXCEPTION, message, { cause: e });
}
