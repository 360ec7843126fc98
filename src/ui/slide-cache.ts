/**
 * Open slides of the viewer, kept between tile requests: a viewer asks for dozens of tiles a
 * second, and opening a DICOMweb slide costs a metadata request and a reader with its own frame
 * cache. At most `maxOpen` slides stay open; the least recently used idle one is closed first
 * (one in use by a request in flight is never closed under it).
 */
import type { OpenSlideReader } from '../wsi/slide-opener.js';
import { SlideTiles } from '../wsi/slide-tiles.js';
import type { SlideLease } from './viewer-backend.js';

interface Entry {
  readonly opening: Promise<{ tiles: SlideTiles; reader: OpenSlideReader }>;
  refs: number;
  usedAt: number;
}

export class SlideCache {
  readonly #entries = new Map<string, Entry>();
  #clock = 0;

  constructor(private readonly maxOpen: number) {}

  /** The slide under `key`, opened by `open` when it is not open yet. */
  async lease(key: string, open: () => Promise<OpenSlideReader>): Promise<SlideLease> {
    let entry = this.#entries.get(key);
    if (!entry) {
      const opening = open().then((reader) => ({
        reader,
        tiles: new SlideTiles(reader.slide.pyramid.levels, reader.reader),
      }));
      entry = { opening, refs: 0, usedAt: 0 };
      this.#entries.set(key, entry);
      // A failed open is forgotten, so the next request tries again.
      opening.catch(() => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
      });
    }
    entry.refs++;
    entry.usedAt = ++this.#clock;
    const held = entry;
    try {
      const { tiles } = await held.opening;
      let released = false;
      return {
        tiles,
        release: () => {
          if (released) return;
          released = true;
          held.refs--;
          this.#evict();
        },
      };
    } catch (err) {
      held.refs--;
      throw err;
    }
  }

  #evict(): void {
    const idle = [...this.#entries.entries()]
      .filter(([, e]) => e.refs === 0)
      .sort((a, b) => a[1].usedAt - b[1].usedAt);
    let excess = this.#entries.size - this.maxOpen;
    for (const [key, e] of idle) {
      if (excess <= 0) break;
      this.#entries.delete(key);
      excess--;
      void e.opening.then(({ reader }) => reader.close()).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(
      entries.map((e) => e.opening.then(({ reader }) => reader.close()).catch(() => undefined)),
    );
  }
}
