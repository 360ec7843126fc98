/**
 * /ui: the web page (index.html with the bundled script and style), the login form and the session
 * endpoint the page starts from. Every response carries the page's Content-Security-Policy. When
 * API keys are configured the page itself redirects to the login form until the browser holds a
 * session cookie; the data the page shows comes from /v1, which checks the cookie like a key.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import express, { type Request, Router } from 'express';
import { contentSecurityPolicy, PAGE_CSP } from './content-security-policy.js';
import { STATIC_DIR, uiBundle } from './ui-assets.js';
import { sessionKeyId, type UiLogin } from './ui-session.js';

export type UiMode = 'service' | 'local';

export interface UiRouterOptions {
  readonly mode: UiMode;
  /** Present when the service has API keys: the page needs a session. */
  readonly login?: UiLogin;
  /** Whether the operators' view (bull-board) is mounted at /ui/queues. */
  readonly queues: boolean;
  /** The job the local viewer shows (its only job). */
  readonly localJobId?: string;
}

/** What GET /ui/session.json answers: how the page should start. */
export interface UiSessionInfo {
  readonly mode: UiMode;
  readonly authRequired: boolean;
  readonly signedIn: boolean;
  readonly queues: boolean;
  readonly localJobId: string | null;
}

const LOGIN_MESSAGE = '<!--MESSAGE-->';
/** Longest API key the form accepts; longer bodies are refused by the parser. */
const LOGIN_BODY_LIMIT = '4kb';

async function readStatic(name: string): Promise<string> {
  return fs.readFile(path.join(STATIC_DIR, name), 'utf8');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function uiRouter(options: UiRouterOptions): Router {
  const { login } = options;
  const router = Router();
  router.use(contentSecurityPolicy(PAGE_CSP));
  const signedIn = (req: Request) => !login || sessionKeyId(login, req.get('cookie')) !== undefined;

  const loginPage = async (message: string) =>
    (await readStatic('login.html')).replace(
      LOGIN_MESSAGE,
      message ? `<p class="error">${escapeHtml(message)}</p>` : '',
    );

  router.get('/', async (req, res) => {
    if (!signedIn(req)) {
      res.redirect(303, '/ui/login');
      return;
    }
    res
      .type('html')
      .set('Cache-Control', 'no-cache')
      .send(await readStatic('index.html'));
  });
  router.get('/app.js', async (_req, res) => {
    res
      .type('application/javascript')
      .set('Cache-Control', 'no-cache')
      .send(await uiBundle());
  });
  router.get('/app.css', async (_req, res) => {
    res
      .type('css')
      .set('Cache-Control', 'no-cache')
      .send(await readStatic('app.css'));
  });
  router.get('/session.json', (req, res) => {
    const info: UiSessionInfo = {
      mode: options.mode,
      authRequired: !!login,
      signedIn: signedIn(req),
      queues: options.queues,
      localJobId: options.localJobId ?? null,
    };
    res.set('Cache-Control', 'no-store').json(info);
  });
  router.get('/login', async (_req, res) => {
    res.type('html').send(await loginPage(''));
  });
  router.post(
    '/login',
    express.urlencoded({ extended: false, limit: LOGIN_BODY_LIMIT }),
    async (req, res) => {
      if (!login) {
        res.redirect(303, '/ui/');
        return;
      }
      const key = typeof req.body?.key === 'string' ? req.body.key.trim() : '';
      const keyId = key ? login.verifyKey(key) : undefined;
      if (!keyId) {
        res
          .status(401)
          .type('html')
          .send(await loginPage('The API key is not valid.'));
        return;
      }
      res.set('Set-Cookie', login.sessions.setCookie(keyId)).redirect(303, '/ui/');
    },
  );
  router.post('/logout', (_req, res) => {
    if (login) res.set('Set-Cookie', login.sessions.clearCookie());
    res.redirect(303, login ? '/ui/login' : '/ui/');
  });
  return router;
}
