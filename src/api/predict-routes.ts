/**
 * POST /v1/predict, answered as Google's Path Foundation server answers: HTTP 200 with
 * `{"predictions": [...]}` (per-instance errors inside), HTTP 200 with `{"error": "CODE"}` (a bare
 * string) when the request as a whole is refused, HTTP 400 only when the body is not JSON, and 503
 * (with Retry-After) when the workers do not answer in time, which clients retry.
 */
import { Router } from 'express';
import type { Logger } from '../log.js';
import { PredictRequestRefused } from './predict-request.js';
import { PredictRequestError, type PredictService } from './predict-service.js';

const STATUS_BAD_REQUEST = 400;
const RETRY_AFTER_S = '5';

export function predictRouter(service: PredictService, logger?: Logger): Router {
  const router = Router();
  router.post('/predict', async (req, res) => {
    if (req.body === undefined) {
      // Google's server: get_json() found no JSON body (wrong or missing Content-Type).
      res.status(STATUS_BAD_REQUEST).json({ error: 'No JSON body.' });
      return;
    }
    try {
      res.json(await service.predict(req.body));
    } catch (err) {
      if (err instanceof PredictRequestRefused) {
        logger?.debug({ code: err.code }, err.message);
        res.json({ error: err.code });
        return;
      }
      if (!(err instanceof PredictRequestError)) throw err;
      res.status(err.status).set('Retry-After', RETRY_AFTER_S).json({ error: err.error });
    }
  });
  return router;
}
