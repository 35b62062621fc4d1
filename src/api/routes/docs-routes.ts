import path from 'node:path';
import express, { type Router } from 'express';
import { buildOpenApiDocument } from '../openapi/openapi-document';

/** Swagger UI's files ship in the swagger-ui-dist package: the page works without internet access. */
const SWAGGER_UI_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));
export const DOCS_ASSETS_PATH = '/docs/assets';

const DOCS_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>kling-element-tracker API</title>
    <link rel="stylesheet" href="${DOCS_ASSETS_PATH}/swagger-ui.css">
    <link rel="icon" type="image/png" href="${DOCS_ASSETS_PATH}/favicon-32x32.png">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="${DOCS_ASSETS_PATH}/swagger-ui-bundle.js"></script>
    <script src="${DOCS_ASSETS_PATH}/docs-init.js"></script>
  </body>
</html>
`;

// validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
const DOCS_INIT_SCRIPT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
`;

/** GET /openapi.json (generated from the zod schemas) and GET /docs (Swagger UI over it, all assets local). */
export function docsRoutes(): Router {
  const router = express.Router();
  router.get('/openapi.json', (_req, res) => {
    res.json(buildOpenApiDocument());
  });
  router.get('/docs', (_req, res) => {
    res.type('html').send(DOCS_PAGE);
  });
  router.use(`${DOCS_ASSETS_PATH}/docs-init.js`, (_req, res) => {
    res.type('application/javascript').send(DOCS_INIT_SCRIPT);
  });
  router.use(DOCS_ASSETS_PATH, express.static(SWAGGER_UI_DIR, { index: false, maxAge: '1h' }));
  return router;
}
