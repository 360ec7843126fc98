/**
 * Storing an SR with STOW-RS and writing it to a file. A failed upload keeps its code (STOW_FAILED
 * for a refusal, DICOMWEB_* for the wire) so the queue knows whether a retry can help; the caller
 * has already written the JSON result, which a failed upload never touches.
 */
import { PathembedError } from '../../errors.js';
import { writeBytesAtomic } from '../result-sink.js';

/** The part of the DICOMweb client an SR upload needs (DicomWebClient.store). */
export interface StowClient {
  store(
    parts: readonly Uint8Array[],
    baseUrl?: string,
    options?: { signal?: AbortSignal },
  ): Promise<{
    readonly status: number;
    readonly stored: ReadonlyArray<{
      readonly sopInstanceUid: string | undefined;
      readonly retrieveUrl: string | undefined;
    }>;
  }>;
}

export interface StoredSr {
  readonly sopInstanceUid: string;
  /** WADO-RS URL of the stored instance when the store said it. */
  readonly retrieveUrl?: string;
  readonly status: number;
}

/**
 * STOW-RS of one SR to `destination` (undefined: the client's PATHEMBED_SR_DESTINATION). The
 * store must list the instance as stored; its SOP Instance UID is a function of the job, so a
 * repeated upload replaces or keeps the same instance rather than adding one.
 */
export async function stowSr(
  client: StowClient,
  bytes: Uint8Array,
  sopInstanceUid: string,
  destination: string | undefined,
  signal?: AbortSignal,
  /** What the instance is, for messages: the SR, or the bulk annotations. */
  what = 'the SR',
): Promise<StoredSr> {
  let result: Awaited<ReturnType<StowClient['store']>>;
  try {
    result = await client.store([bytes], destination, { signal });
  } catch (err) {
    if (err instanceof PathembedError) throw err;
    throw new PathembedError(
      'STOW_FAILED',
      `STOW-RS of ${what} failed: ${(err as Error)?.message ?? String(err)}`,
      {
        sopInstanceUid,
      },
      { cause: err },
    );
  }
  const stored = result.stored.find((s) => s.sopInstanceUid === sopInstanceUid);
  if (!stored) {
    throw new PathembedError(
      'STOW_FAILED',
      `STOW-RS answered ${result.status} but does not list ${what} ${sopInstanceUid} as stored`,
      { sopInstanceUid, status: result.status },
    );
  }
  return {
    sopInstanceUid,
    status: result.status,
    ...(stored.retrieveUrl ? { retrieveUrl: stored.retrieveUrl } : {}),
  };
}

/** Writes the SR's Part 10 bytes to `filePath` atomically. */
export async function writeSrFile(filePath: string, bytes: Uint8Array): Promise<void> {
  await writeBytesAtomic(filePath, bytes);
}
