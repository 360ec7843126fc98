/**
 * The result view: the slide in OpenSeadragon (tiles from /v1/jobs/:id/tiles), the patches drawn
 * on a canvas above it, coloured by their first three principal components (the server's PCA
 * colours) or by k-means clusters of their component scores computed here, and the k nearest
 * patches of a clicked patch (POST /v1/search, in the slide or in the batch) as thumbnails with
 * their cosine distances. The overlay canvas states its image-to-screen transform in data
 * attributes (scale, offset), which is what the browser tests check the drawing against.
 */
import OpenSeadragon from 'openseadragon';
import {
  api,
  type Neighbour,
  type PatchOverlay,
  regionUrl,
  type SearchAnswer,
  type SlideLayout,
} from './api-client.js';
import { CLUSTER_PALETTE, kMeans } from './kmeans.js';

const THUMBNAIL_PX = 112;

interface Selection {
  readonly patch: number;
  readonly neighbours: Neighbour[];
}

function $(id: string): HTMLElement {
  return document.getElementById(id) as HTMLElement;
}

export class ResultView {
  readonly #section = $('result-view');
  #viewer: OpenSeadragon.Viewer | undefined;
  #canvas: HTMLCanvasElement | undefined;
  #jobId = '';
  #batchId: string | null = null;
  #overlay: PatchOverlay | undefined;
  /** Counts clicks, so a late search answer does not replace a newer one. */
  #selectToken = 0;
  #colours: Array<readonly [number, number, number]> = [];
  #selection: Selection | undefined;
  #loadToken = 0;

  constructor() {
    for (const id of ['colour-mode', 'cluster-k']) $(id).addEventListener('change', () => this.#recolour());
    $('overlay-opacity').addEventListener('input', () => this.#draw());
    $('neighbour-k').addEventListener('change', () => {
      if (this.#selection) void this.#select(this.#selection.patch);
    });
    $('search-scope').addEventListener('change', () => {
      if (this.#selection) void this.#select(this.#selection.patch);
    });
  }

  hide(): void {
    this.#section.hidden = true;
  }

  async show(jobId: string, batchId: string | null): Promise<void> {
    this.#section.hidden = false;
    // The batch (for "in the batch") may change without the slide changing.
    this.#batchId = batchId;
    const scope = $('search-scope') as HTMLSelectElement;
    (scope.querySelector('option[value="batch"]') as HTMLOptionElement).disabled = !batchId;
    if (!batchId) scope.value = 'slide';
    $('result-title').textContent = `Job ${jobId}${batchId ? ` (batch ${batchId})` : ''}`;
    if (jobId === this.#jobId && this.#viewer) return;
    const token = ++this.#loadToken;
    this.#jobId = jobId;
    this.#selection = undefined;
    document.body.dataset.viewerReady = '0';
    $('neighbour-list').replaceChildren();
    $('neighbours-hint').textContent = 'Click a patch to see its nearest patches.';
    // The previous job's picture goes now: a failed load must not leave it under this job's title.
    this.#viewer?.destroy();
    this.#viewer = undefined;
    this.#overlay = undefined;
    $('viewer').replaceChildren();
    $('patch-count').textContent = '';
    let layout: SlideLayout;
    let overlay: PatchOverlay;
    try {
      [layout, overlay] = await Promise.all([
        api<SlideLayout>(`/v1/jobs/${encodeURIComponent(jobId)}/slide`),
        api<PatchOverlay>(`/v1/jobs/${encodeURIComponent(jobId)}/overlay`),
      ]);
    } catch (err) {
      if (token !== this.#loadToken) return;
      // Showing the same job again retries the load.
      this.#jobId = '';
      $('neighbours-hint').textContent =
        `This result cannot be shown: ${err instanceof Error ? err.message : String(err)}`;
      return;
    }
    if (token !== this.#loadToken) return;
    this.#overlay = overlay;
    $('patch-count').textContent = `${overlay.count} patches`;
    this.#open(layout);
    this.#recolour();
  }

  #open(layout: SlideLayout): void {
    this.#viewer?.destroy();
    const container = $('viewer');
    container.replaceChildren();
    const viewer = OpenSeadragon({
      element: container,
      drawer: 'canvas',
      showNavigationControl: false,
      showNavigator: false,
      animationTime: 0.3,
      visibilityRatio: 0.5,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
      tileSources: {
        width: layout.widthPx,
        height: layout.heightPx,
        tileSize: layout.tileSizePx,
        tileOverlap: 0,
        minLevel: 0,
        maxLevel: layout.maxLevel,
        getTileUrl: (level: number, x: number, y: number) =>
          layout.tiles.replace('{z}', String(level)).replace('{x}', String(x)).replace('{y}', String(y)),
      } as unknown as OpenSeadragon.TileSourceOptions,
    });
    this.#viewer = viewer;
    const canvas = document.createElement('canvas');
    canvas.id = 'overlay';
    viewer.canvas.appendChild(canvas);
    this.#canvas = canvas;
    const redraw = () => this.#draw();
    for (const e of ['open', 'animation', 'animation-finish', 'resize', 'update-viewport'] as const)
      viewer.addHandler(e, redraw);
    viewer.addHandler('canvas-click', (e) => {
      if (!e.quick) return;
      const p = viewer.viewport.viewerElementToImageCoordinates(e.position as OpenSeadragon.Point);
      const hit = this.#patchAt(p.x, p.y);
      if (hit !== undefined) void this.#select(hit);
    });
    viewer.world.addHandler('add-item', (ev) => {
      const item = ev.item;
      const ready = () => {
        this.#draw();
        document.body.dataset.viewerReady = item.getFullyLoaded() ? '1' : '0';
      };
      item.addHandler('fully-loaded-change', ready);
    });
  }

  #patchAt(x: number, y: number): number | undefined {
    const o = this.#overlay;
    if (!o) return undefined;
    for (let i = 0; i < o.count; i++) {
      const px = o.x[i] ?? 0;
      const py = o.y[i] ?? 0;
      if (x >= px && x < px + (o.width[i] ?? 0) && y >= py && y < py + (o.height[i] ?? 0)) return i;
    }
    return undefined;
  }

  #recolour(): void {
    const o = this.#overlay;
    if (!o) return;
    const mode = ($('colour-mode') as HTMLSelectElement).value;
    const kInput = $('cluster-k') as HTMLInputElement;
    kInput.disabled = mode !== 'kmeans';
    if (mode === 'kmeans') {
      const k = Math.max(2, Math.min(CLUSTER_PALETTE.length, Number(kInput.value) || 6));
      const labels = kMeans(o.scores, o.components, k);
      this.#colours = Array.from(labels, (l) => CLUSTER_PALETTE[l % CLUSTER_PALETTE.length] ?? [0, 0, 0]);
      document.body.dataset.clusters = String(new Set(labels).size);
    } else {
      this.#colours = Array.from(
        { length: o.count },
        (_, i) => [o.rgb[3 * i] ?? 0, o.rgb[3 * i + 1] ?? 0, o.rgb[3 * i + 2] ?? 0] as const,
      );
      delete document.body.dataset.clusters;
    }
    this.#draw();
  }

  #draw(): void {
    const viewer = this.#viewer;
    const canvas = this.#canvas;
    const o = this.#overlay;
    if (!viewer || !canvas || !o || !viewer.world.getItemAt(0)) return;
    const width = viewer.canvas.clientWidth;
    const height = viewer.canvas.clientHeight;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const origin = viewer.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    const unit = viewer.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(1000, 0));
    const scale = (unit.x - origin.x) / 1000;
    canvas.dataset.scale = String(scale);
    canvas.dataset.offsetX = String(origin.x);
    canvas.dataset.offsetY = String(origin.y);
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.globalAlpha = Number(($('overlay-opacity') as HTMLInputElement).value) / 100;
    const rect = (i: number) =>
      [
        origin.x + (o.x[i] ?? 0) * scale,
        origin.y + (o.y[i] ?? 0) * scale,
        (o.width[i] ?? 0) * scale,
        (o.height[i] ?? 0) * scale,
      ] as const;
    for (let i = 0; i < o.count; i++) {
      const c = this.#colours[i] ?? [0, 0, 0];
      ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
      ctx.fillRect(...rect(i));
    }
    ctx.globalAlpha = 1;
    const sel = this.#selection;
    if (sel) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = '#ffeb3b';
      for (const n of sel.neighbours) {
        if (n.jobId !== this.#jobId) continue;
        ctx.strokeRect(origin.x + n.x * scale, origin.y + n.y * scale, n.width * scale, n.height * scale);
      }
      ctx.lineWidth = 3;
      ctx.strokeStyle = '#ffffff';
      ctx.strokeRect(...rect(sel.patch));
    }
  }

  async #select(patch: number): Promise<void> {
    const o = this.#overlay;
    if (!o) return;
    const k = Math.max(1, Math.min(100, Number(($('neighbour-k') as HTMLInputElement).value) || 8));
    const inBatch = ($('search-scope') as HTMLSelectElement).value === 'batch' && this.#batchId;
    const at = { x: o.x[patch] ?? 0, y: o.y[patch] ?? 0 };
    $('neighbours-hint').textContent = 'Searching…';
    // Only the answer to the latest click on the job still shown may land.
    const token = ++this.#selectToken;
    const jobId = this.#jobId;
    const current = () => token === this.#selectToken && jobId === this.#jobId && o === this.#overlay;
    try {
      const answer = await api<SearchAnswer>('/v1/search', {
        method: 'POST',
        body: inBatch ? { batchId: this.#batchId, patch: { jobId, ...at }, k } : { jobId, patch: at, k },
      });
      if (!current()) return;
      this.#selection = { patch, neighbours: answer.neighbours };
      $('neighbours-hint').textContent =
        `Patch ${o.patchIndex[patch]} at (${at.x}, ${at.y}): ${answer.neighbours.length} nearest of ${answer.index.size} (${answer.index.kind} index, cosine distance)`;
      $('neighbour-list').replaceChildren(...answer.neighbours.map((n) => this.#neighbourItem(n)));
      document.body.dataset.selectedPatch = String(o.patchIndex[patch]);
    } catch (err) {
      if (!current()) return;
      $('neighbours-hint').textContent = (err as Error).message;
    }
    this.#draw();
  }

  #neighbourItem(n: Neighbour): HTMLLIElement {
    const li = document.createElement('li');
    li.className = 'neighbour';
    li.dataset.jobId = n.jobId;
    li.dataset.patchIndex = String(n.patchIndex);
    li.dataset.distance = String(n.distance);
    li.dataset.x = String(n.x);
    li.dataset.y = String(n.y);
    const img = document.createElement('img');
    img.src = regionUrl(n.jobId, n, THUMBNAIL_PX);
    img.alt = `patch ${n.patchIndex}`;
    img.width = THUMBNAIL_PX;
    img.height = THUMBNAIL_PX;
    const text = document.createElement('span');
    text.className = 'distance';
    text.textContent =
      n.distance === 0 ? '0' : n.distance < 0.001 ? n.distance.toExponential(2) : n.distance.toFixed(4);
    const where = document.createElement('span');
    where.className = 'where';
    where.textContent = `${n.jobId === this.#jobId ? 'this slide' : `job ${n.jobId}`} · (${n.x}, ${n.y})`;
    li.append(img, text, where);
    li.addEventListener('click', () => this.#goTo(n));
    return li;
  }

  #goTo(n: Neighbour): void {
    if (n.jobId !== this.#jobId) {
      const suffix = this.#batchId ? `?batch=${encodeURIComponent(this.#batchId)}` : '';
      window.location.hash = `#/jobs/${encodeURIComponent(n.jobId)}${suffix}`;
      return;
    }
    const viewer = this.#viewer;
    if (!viewer) return;
    const margin = n.width * 3;
    viewer.viewport.fitBounds(
      viewer.viewport.imageToViewportRectangle(
        n.x - margin,
        n.y - margin,
        n.width + 2 * margin,
        n.height + 2 * margin,
      ),
    );
  }
}
