/** The PathembedError a synchronous call throws; anything else (or no throw) fails the test. */
import { isPathembedError, type PathembedError } from '../../src/errors.js';

export function thrownPathembedError(fn: () => unknown): PathembedError {
  try {
    fn();
  } catch (err) {
    if (isPathembedError(err)) return err;
    throw err;
  }
  throw new Error('expected a PathembedError');
}
