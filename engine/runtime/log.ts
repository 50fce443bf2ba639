import { pino } from 'pino';

/** The engine's structured logger (JSON lines on stderr; level from CXSTREAM_LOG_LEVEL, default info). */
export const log = pino(
  { name: 'cxstream', level: process.env.CXSTREAM_LOG_LEVEL ?? 'info' },
  pino.destination({ fd: 2, sync: true }),
);
