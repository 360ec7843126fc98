/**
 * The page's entry: asks /ui/session.json how to start (service or local viewer, signed in or
 * not), then routes by the URL's hash: `#/jobs` (jobs and batches) or `#/jobs/<id>[?batch=<id>]`
 * (a completed job's result view).
 */
import { api, type SessionInfo } from './api-client.js';
import { JobsView } from './jobs-view.js';
import { ResultView } from './result-view.js';

async function start(): Promise<void> {
  const session = await api<SessionInfo>('/ui/session.json');
  if (session.authRequired && !session.signedIn) {
    window.location.assign('/ui/login');
    return;
  }
  document.body.dataset.mode = session.mode;
  (document.getElementById('nav-queues') as HTMLElement).hidden = !session.queues;
  (document.getElementById('logout') as HTMLElement).hidden = !session.authRequired;
  const jobs = new JobsView();
  const result = new ResultView();
  const route = () => {
    const hash = window.location.hash || (session.localJobId ? `#/jobs/${session.localJobId}` : '#/jobs');
    const match = /^#\/jobs\/([^?]+)(?:\?batch=(.+))?$/.exec(hash);
    if (match) {
      jobs.hide();
      void result.show(decodeURIComponent(match[1] ?? ''), match[2] ? decodeURIComponent(match[2]) : null);
    } else {
      result.hide();
      jobs.show();
    }
  };
  window.addEventListener('hashchange', route);
  route();
}

void start();
