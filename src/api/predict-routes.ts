/**
 * POST /v1/predict. Request-level failures (a malformed envelope, too many patches) are answered in
 * Path Foundation's shape `{ error: { code, description } }`, as Google's endpoint does, so EZ-WSI
 * clients report them properly; per-instance failures are inside `predictions`.
 */
import { Router } from 'express';
import { PredictRequestError, type PredictService } from './predict-service.js';

export function predictRouter(service: PredictService): Router {
  const router = Router();
  router.post('/predict', async (req, res) => {
    try {
      res.json(await service.predict(req.body));
    } catch (err) {
      if (!(err instanceof PredictRequestError)) throw err;
      res.status(err.status).json({ error: err.error });
    }
  });
  return router;
}
