/**
 * The web page's session cookies and deep-zoom tile geometry: a cookie verifies only unaltered,
 * unexpired and under the secret that signed it; tiles cover the slide exactly at every zoom.
 */
import { describe, expect, it } from 'vitest';
import { kMeans } from '../../src/ui/browser/kmeans.js';
import { readCookie, SESSION_COOKIE, sessionKeyId, UiSessions } from '../../src/ui/ui-session.js';
import type { PatchReader } from '../../src/wsi/patch-reader.js';
import type { SlideLevel } from '../../src/wsi/slide-level.js';
import { SlideTiles } from '../../src/wsi/slide-tiles.js';

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('UiSessions', () => {
  const sessions = new UiSessions({ secret: 'x'.repeat(32), ttlMs: 60_000 });

  it('verifies its own cookie and names the key id', () => {
    const value = sessions.issue('abcdef0123456789', 1_000);
    expect(sessions.verify(value, 1_001)).toBe('abcdef0123456789');
  });

  it('refuses an expired, altered or foreign cookie', () => {
    const value = sessions.issue('abcdef0123456789', 1_000);
    expect(sessions.verify(value, 61_000)).toBeUndefined();
    const [id, expires, mac] = value.split('.');
    expect(sessions.verify(`${id}.${Number(expires) + 1}.${mac}`, 1_001)).toBeUndefined();
    expect(sessions.verify(`0000000000000000.${expires}.${mac}`, 1_001)).toBeUndefined();
    expect(sessions.verify(`${id}.${expires}.${mac!.slice(0, -2)}AA`, 1_001)).toBeUndefined();
    // Another spelling of the same MAC: a 32-byte MAC's last base64url character carries 4 bits and
    // 2 spare ones, so the 3 other characters that differ only in the spare bits decode alike.
    const last = BASE64URL.indexOf(mac!.at(-1)!);
    for (let spare = 1; spare < 4; spare++) {
      const alias = `${mac!.slice(0, -1)}${BASE64URL[last ^ spare]}`;
      expect(Buffer.from(alias, 'base64url').equals(Buffer.from(mac!, 'base64url'))).toBe(true);
      expect(sessions.verify(`${id}.${expires}.${alias}`, 1_001)).toBeUndefined();
    }
    expect(new UiSessions({ secret: 'y'.repeat(32), ttlMs: 60_000 }).verify(value, 1_001)).toBeUndefined();
    expect(sessions.verify('garbage', 1_001)).toBeUndefined();
    expect(sessions.verify(undefined)).toBeUndefined();
  });

  it('sets an HttpOnly SameSite=Strict cookie (Secure when asked) and clears it', () => {
    const cookie = sessions.setCookie('abcdef0123456789');
    expect(cookie).toMatch(
      new RegExp(
        `^${SESSION_COOKIE}=abcdef0123456789\\.\\d+\\.[\\w-]+; Path=/; HttpOnly; SameSite=Strict; Max-Age=60$`,
      ),
    );
    expect(new UiSessions({ ttlMs: 1000, secureCookie: true }).setCookie('a')).toMatch(/; Secure$/);
    expect(sessions.clearCookie()).toBe(`${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
  });

  it('ends the sessions of a key that is no longer configured', () => {
    const value = sessions.issue('abcdef0123456789');
    const header = `other=1; ${SESSION_COOKIE}=${value}`;
    expect(readCookie(header, SESSION_COOKIE)).toBe(value);
    const login = {
      sessions,
      verifyKey: () => undefined,
      knowsKeyId: (id: string) => id === 'abcdef0123456789',
    };
    expect(sessionKeyId(login, header)).toBe('abcdef0123456789');
    expect(sessionKeyId({ ...login, knowsKeyId: () => false }, header)).toBeUndefined();
  });
});

describe('SlideTiles geometry', () => {
  const level = (index: number, widthPx: number, heightPx: number): SlideLevel =>
    ({ index, widthPx, heightPx, tileWidthPx: 256, tileHeightPx: 256 }) as SlideLevel;
  const tiles = new SlideTiles([level(0, 1000, 700), level(1, 500, 350)], {} as PatchReader);

  it('lays out OpenSeadragon deep-zoom levels', () => {
    expect(tiles.layout).toEqual({ widthPx: 1000, heightPx: 700, tileSizePx: 256, maxLevel: 10 });
    // Level 10 is level 0: 4 x 3 tiles, the last ones partial.
    expect(tiles.tileRect(10, 3, 2)).toEqual({
      rect: { x: 768, y: 512, width: 232, height: 188 },
      downsample: 1,
    });
    // Level 9: 500 x 350 px.
    expect(tiles.tileRect(9, 1, 1)).toEqual({
      rect: { x: 256, y: 256, width: 244, height: 94 },
      downsample: 2,
    });
    // Level 0: one pixel.
    expect(tiles.tileRect(0, 0, 0)).toEqual({ rect: { x: 0, y: 0, width: 1, height: 1 }, downsample: 1024 });
  });

  it('refuses a picture that would read more than MAX_READ_PX stored pixels (a slide without a pyramid)', async () => {
    const single = new SlideTiles([level(0, 100_000, 80_000)], {} as PatchReader);
    // Zoom 0 is the whole 100,000 x 80,000 px level in one pixel.
    await expect(single.tile(0, 0, 0)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    await expect(single.region({ x: 0, y: 0, width: 50_000, height: 50_000 }, 128)).rejects.toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
    });
  });

  it('answers NOT_FOUND outside the grid', () => {
    for (const [z, c, r] of [
      [10, 4, 0],
      [10, 0, 3],
      [11, 0, 0],
      [-1, 0, 0],
      [9, 2, 0],
    ] as const) {
      expect(() => tiles.tileRect(z, c, r)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    }
  });
});

describe('kMeans (the page clusters patches in the browser)', () => {
  it('finds well separated groups and gives the same labels every time', () => {
    const flat: number[] = [];
    const centres = [
      [0, 0],
      [10, 10],
      [-10, 10],
    ];
    for (let i = 0; i < 90; i++) {
      const c = centres[i % 3]!;
      flat.push(c[0]! + ((i * 7) % 5) / 10, c[1]! + ((i * 3) % 5) / 10);
    }
    const labels = kMeans(flat, 2, 3);
    for (let i = 3; i < 90; i++) expect(labels[i]).toBe(labels[i % 3]);
    expect(new Set(labels).size).toBe(3);
    expect([...kMeans(flat, 2, 3)]).toEqual([...labels]);
  });
});
