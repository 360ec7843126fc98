/**
 * Request validation: zod schemas parse bodies and queries; a failure becomes one INVALID_ARGUMENT
 * error naming every offending field by its dotted path (`options.stridePx`, `sources.1.studyUid`)
 * and the reason, so a client can fix its request without guessing. Unknown fields are refused by
 * the strict schemas and reported at their own path.
 */
import type { z } from 'zod';
import { PathembedError } from '../errors.js';

export interface FieldIssue {
  /** Dotted path of the field ('' for the body itself). */
  readonly path: string;
  readonly reason: string;
}

type Issue = z.core.$ZodIssue;

function dotted(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p)).join('.');
}

/** One entry per field; unknown keys are listed at their own path rather than at their parent. */
export function fieldIssues(issues: readonly Issue[]): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: dotted([...issue.path, key]), reason: 'unknown field' });
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      // Report the branch that got furthest (most specific path); a union of string | object
      // otherwise only says "invalid input".
      const branches = issue.errors.map((branch) => fieldIssues(branch));
      const deepest = branches.reduce((best, b) =>
        Math.max(...b.map((i) => i.path.length)) > Math.max(...best.map((i) => i.path.length)) ? b : best,
      );
      const basePath = dotted(issue.path);
      out.push(
        ...deepest.map((i) => ({
          // Branch issues carry paths relative to the union's position.
          path: [basePath, i.path].filter(Boolean).join('.'),
          reason: i.reason,
        })),
      );
    } else {
      out.push({ path: dotted(issue.path), reason: issue.message });
    }
  }
  return out;
}

export function validationError(issues: readonly FieldIssue[], what: string): PathembedError {
  const summary = issues
    .slice(0, 5)
    .map((i) => `${i.path || what}: ${i.reason}`)
    .join('; ');
  return new PathembedError('INVALID_ARGUMENT', `Invalid ${what}: ${summary}`, { issues });
}

/** Parses `value` with `schema`; throws INVALID_ARGUMENT listing every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  if (value === undefined && what === 'request body') {
    // express.json leaves the body undefined when the request is not sent as JSON.
    throw new PathembedError(
      'INVALID_ARGUMENT',
      'The request has no JSON body: send a JSON object with Content-Type: application/json.',
      { issues: [{ path: '', reason: 'no JSON body' }] },
    );
  }
  throw validationError(fieldIssues(result.error.issues), what);
}
