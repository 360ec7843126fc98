/**
 * One request's answer shared by several callers, each under its own abort signal: a caller's
 * abort rejects that caller at once and never fails another caller's wait. Used by the frame
 * cache (frames in flight) and the DICOMweb frame source (its series metadata).
 */

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

/** Resolves like `promise`, or rejects as soon as `signal` aborts. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** A request in flight and the signal it runs under (the first caller's). */
export interface SharedRequest<T> {
  readonly promise: Promise<T>;
  readonly signal: AbortSignal | undefined;
}

/**
 * `shared`'s answer for a caller under `signal`. When the request runs under another caller's
 * signal and fails because that one aborted, while this caller's has not, it asks `again`. The
 * caller's own abort is left to the caller (`raceAbort`), which may race many joins at once.
 */
export function joinShared<T>(
  shared: SharedRequest<T>,
  signal: AbortSignal | undefined,
  again: () => Promise<T>,
): Promise<T> {
  if (shared.signal === signal || shared.signal === undefined) return shared.promise;
  return shared.promise.catch((err: unknown) => {
    if (shared.signal?.aborted && !signal?.aborted) return again();
    throw err;
  });
}
