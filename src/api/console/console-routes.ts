import path from 'node:path';
import express, { type Router } from 'express';

export const CONSOLE_PATH = '/console';

/**
 * The page, its script and its style, as files: `npm run build` copies them beside the compiled code,
 * so the same path works from src/ (tests) and dist/ (production).
 */
const ASSETS_DIR = path.join(__dirname, 'public');

/**
 * The page talks only to this server and runs only its own script: even a task field that held markup
 * could not run code or send the API key elsewhere.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * GET /console: the operators' task console, a static page that uses the public API with an API key
 * typed into it (kept in the tab's sessionStorage only). No server-side session, nothing to build at run time.
 */
export function consoleRoutes(): Router {
  const router = express.Router();
  router.use((_req, res, next) => {
    res.set({ 'Content-Security-Policy': CONTENT_SECURITY_POLICY, 'Referrer-Policy': 'no-referrer', 'X-Content-Type-Options': 'nosniff' });
    next();
  });
  // /console itself is the page (no redirect to /console/: its assets use absolute paths).
  router.get('/', (_req, res) => {
    res.sendFile(path.join(ASSETS_DIR, 'index.html'), { maxAge: '5m' });
  });
  router.use(express.static(ASSETS_DIR, { index: false, redirect: false, maxAge: '5m' }));
  return router;
}
