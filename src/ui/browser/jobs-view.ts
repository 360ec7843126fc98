/**
 * The jobs and batches view: the caller's recent jobs and the batches this browser submitted or
 * opened, polled every two seconds while the view is shown, and the form that submits a series
 * (POST /v1/jobs), a study or a search (POST /v1/batches).
 */
import { api, type JobStatus } from './api-client.js';

const POLL_MS = 2000;
const BATCHES_KEY = 'pathembed.batches';

interface BatchStatus {
  readonly id: string;
  readonly state: string;
  readonly slides: number;
  readonly counts: Record<string, number>;
  readonly progress: {
    readonly finished: number;
    readonly patchesDone: number;
    readonly patchesPlanned: number;
  };
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text = '',
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function knownBatches(): string[] {
  try {
    return JSON.parse(sessionStorage.getItem(BATCHES_KEY) ?? '[]') as string[];
  } catch {
    return [];
  }
}

function rememberBatch(id: string): void {
  const ids = [id, ...knownBatches().filter((b) => b !== id)].slice(0, 20);
  sessionStorage.setItem(BATCHES_KEY, JSON.stringify(ids));
}

function progressCell(done: number, planned: number | null): HTMLTableCellElement {
  const td = el('td');
  const bar = el('progress', { max: String(planned ?? 1), value: String(planned ? done : 0) });
  td.append(bar, ` ${done}${planned !== null ? ` / ${planned}` : ''}`);
  return td;
}

function jobRow(job: JobStatus, batchId?: string): HTMLTableRowElement {
  const tr = el('tr', { 'data-job-id': job.id, 'data-state': job.state });
  const idCell = el('td');
  if (job.state === 'completed') {
    const suffix = batchId ? `?batch=${encodeURIComponent(batchId)}` : '';
    idCell.append(el('a', { href: `#/jobs/${encodeURIComponent(job.id)}${suffix}` }, job.id));
  } else idCell.textContent = job.id;
  tr.append(
    idCell,
    el('td', { class: `state state-${job.state}` }, job.state),
    el('td', { class: 'source' }, job.source?.url ?? ''),
    progressCell(job.progress?.done ?? 0, job.progress?.planned ?? null),
    el(
      'td',
      {},
      job.error
        ? `${job.error.code}: ${job.error.message}`
        : job.progress?.patchesPerSecond
          ? `${job.progress.patchesPerSecond.toFixed(1)} patches/s`
          : '',
    ),
  );
  return tr;
}

export class JobsView {
  #timer: number | undefined;
  readonly #section = document.getElementById('jobs-view') as HTMLElement;

  constructor() {
    const form = document.getElementById('submit-form') as HTMLFormElement;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.#submit(form);
    });
    const open = document.getElementById('open-batch-form') as HTMLFormElement;
    open.addEventListener('submit', (e) => {
      e.preventDefault();
      const input = open.elements.namedItem('batchId') as HTMLInputElement;
      if (input.value.trim()) rememberBatch(input.value.trim());
      input.value = '';
      void this.refresh();
    });
  }

  show(): void {
    this.#section.hidden = false;
    void this.refresh();
    this.#timer ??= window.setInterval(() => void this.refresh(), POLL_MS);
  }

  hide(): void {
    this.#section.hidden = true;
    if (this.#timer !== undefined) window.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async refresh(): Promise<void> {
    const [jobs] = await Promise.all([
      api<{ jobs: JobStatus[]; total: number }>('/v1/jobs?limit=50'),
      this.#refreshBatches(),
    ]);
    const body = document.querySelector('#jobs-table tbody') as HTMLElement;
    body.replaceChildren(...jobs.jobs.map((j) => jobRow(j)));
    (document.getElementById('jobs-total') as HTMLElement).textContent =
      `${jobs.total} job${jobs.total === 1 ? '' : 's'}`;
  }

  async #refreshBatches(): Promise<void> {
    const ids = knownBatches();
    const list = document.getElementById('batches') as HTMLElement;
    const items = await Promise.all(
      ids.map(async (id) => {
        try {
          const b = await api<BatchStatus>(`/v1/batches/${encodeURIComponent(id)}`);
          const jobs = await api<{ jobs: JobStatus[] }>(
            `/v1/batches/${encodeURIComponent(id)}/jobs?limit=100`,
          );
          const box = el('details', { class: 'batch', 'data-batch-id': id, open: '' });
          const summary = el('summary');
          summary.append(
            `Batch ${b.id}: ${b.state}, ${b.progress.finished} of ${b.slides} slides finished, `,
            el('progress', {
              max: String(b.progress.patchesPlanned || 1),
              value: String(b.progress.patchesDone),
            }),
            ` ${b.progress.patchesDone} / ${b.progress.patchesPlanned} patches`,
          );
          const table = el('table');
          table.append(...jobs.jobs.map((j) => jobRow(j, id)));
          box.append(summary, table);
          return box;
        } catch (err) {
          return el('p', { class: 'error' }, `Batch ${id}: ${(err as Error).message}`);
        }
      }),
    );
    list.replaceChildren(...items);
  }

  async #submit(form: HTMLFormElement): Promise<void> {
    const kind = (form.elements.namedItem('kind') as HTMLSelectElement).value;
    const text = (form.elements.namedItem('source') as HTMLTextAreaElement).value.trim();
    const message = document.getElementById('submit-message') as HTMLElement;
    message.textContent = '';
    try {
      if (kind === 'series') {
        const answer = await api<{ jobs: Array<{ id: string }> }>('/v1/jobs', {
          method: 'POST',
          body: { sources: text.split(/\s+/).filter(Boolean) },
        });
        message.textContent = `Submitted ${answer.jobs.map((j) => j.id).join(', ')}`;
      } else {
        const source = kind === 'search' ? { search: JSON.parse(text) as unknown } : text;
        const answer = await api<{ id: string; slides: number }>('/v1/batches', {
          method: 'POST',
          body: { sources: [source] },
        });
        rememberBatch(answer.id);
        message.textContent = `Batch ${answer.id}: ${answer.slides} slides`;
      }
      await this.refresh();
    } catch (err) {
      message.textContent = (err as Error).message;
      message.className = 'error';
    }
  }
}
