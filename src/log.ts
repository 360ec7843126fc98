/**
 * The process logger (pino, JSON lines on stderr so stdout stays free for command output).
 * Anything that can hold a credential is redacted by path, so a token passed along in an options
 * object never reaches a log line.
 */
import { pino } from 'pino';

export const REDACTED_PATHS = [
  'token',
  'bearerToken',
  'bearer_token',
  'authorization',
  'headers.authorization',
  '*.token',
  '*.bearerToken',
  '*.bearer_token',
  '*.authorization',
  '*.headers.authorization',
];

export type Logger = pino.Logger;

/**
 * One logger that writes nothing, shared by every component built without a logger (a
 * DicomWebClient per slide read, say): making a pino instance each time costs about 0.5 ms in a
 * fresh process, on the path to a slide's first request.
 */
export const SILENT_LOGGER: Logger = pino({ level: 'silent' });

export function createLogger(level = 'info', name = 'pathembed'): Logger {
  return pino(
    { name, level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
    pino.destination({ fd: 2, sync: false }),
  );
}
