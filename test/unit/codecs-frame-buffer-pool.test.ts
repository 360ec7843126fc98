/**
 * FrameBufferPool: the decoded-frame buffers a FrameDecoder reuses between slide readers. Reuse
 * is only safe if a buffer is never handed out twice, never taken from outside, and the byte
 * bound holds.
 */
import { describe, expect, it } from 'vitest';
import { FrameBufferPool } from '../../src/codecs/frame-buffer-pool.js';

const FRAME = 240 * 240 * 3;

describe('FrameBufferPool', () => {
  it('hands a given-back buffer to the next take of the same size, and new memory for other sizes', () => {
    const pool = new FrameBufferPool(10 * FRAME);
    const a = pool.take(FRAME);
    expect(a.byteLength).toBe(FRAME);
    pool.give(a);
    expect(pool.heldBytes).toBe(FRAME);
    const other = pool.take(FRAME / 3);
    expect(other).not.toBe(a);
    expect(pool.take(FRAME)).toBe(a);
    expect(pool.heldBytes).toBe(0);
    expect(pool.take(FRAME)).not.toBe(a);
  });

  it('keeps a buffer given back twice only once, so it is never handed out to two takers', () => {
    const pool = new FrameBufferPool(10 * FRAME);
    const a = pool.take(FRAME);
    pool.give(a);
    pool.give(a);
    expect(pool.heldBytes).toBe(FRAME);
    const first = pool.take(FRAME);
    const second = pool.take(FRAME);
    expect(first).toBe(a);
    expect(second).not.toBe(a);
  });

  it('ignores buffers it did not make, views into them, and anything beyond its byte bound', () => {
    const pool = new FrameBufferPool(2 * FRAME);
    pool.give(new Uint8Array(FRAME));
    pool.give(pool.take(2 * FRAME).subarray(0, FRAME));
    expect(pool.heldBytes).toBe(0);
    const [a, b, c] = [pool.take(FRAME), pool.take(FRAME), pool.take(FRAME)];
    for (const buf of [a, b, c]) pool.give(buf);
    expect(pool.heldBytes).toBe(2 * FRAME);
    const none = new FrameBufferPool(0);
    none.give(none.take(FRAME));
    expect(none.heldBytes).toBe(0);
  });

  it('lets everything go on clear', () => {
    const pool = new FrameBufferPool(4 * FRAME);
    const a = pool.take(FRAME);
    pool.give(a);
    pool.clear();
    expect(pool.heldBytes).toBe(0);
    expect(pool.take(FRAME)).not.toBe(a);
  });

  it('hands out only a free buffer from takeFree, allocating nothing', () => {
    const pool = new FrameBufferPool(4 * FRAME);
    expect(pool.takeFree(FRAME)).toBeUndefined();
    const a = pool.take(FRAME);
    pool.give(a);
    expect(pool.takeFree(2 * FRAME)).toBeUndefined();
    expect(pool.takeFree(FRAME)).toBe(a);
    expect(pool.heldBytes).toBe(0);
    expect(pool.takeFree(FRAME)).toBeUndefined();
  });

  it('takes back a buffer it adopted (one that came from another thread), not a view into a larger one', () => {
    const pool = new FrameBufferPool(4 * FRAME);
    const whole = new Uint8Array(FRAME);
    pool.adopt(whole);
    pool.give(whole);
    expect(pool.heldBytes).toBe(FRAME);
    const part = new Uint8Array(new ArrayBuffer(2 * FRAME), 0, FRAME);
    pool.adopt(part);
    pool.give(part);
    expect(pool.heldBytes).toBe(FRAME);
  });
});
