import type { RequestHandler, Response } from 'express';
import type { AuthenticatedTenant, TenantRepository } from '../db/tenant-repository';
import { AppError } from '../errors';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Resolves `Authorization: Bearer <api_key>` to a tenant, kept in res.locals for the routes. */
export function authenticateApiKey(tenants: Pick<TenantRepository, 'authenticate'>): RequestHandler {
  return async (req, res, next) => {
    const match = BEARER.exec(req.get('authorization') ?? '');
    if (!match?.[1]) {
      res.set('WWW-Authenticate', 'Bearer');
      throw new AppError('UNAUTHORIZED', 'Send your API key as "Authorization: Bearer <api_key>"');
    }
    const tenant = await tenants.authenticate(match[1]);
    if (!tenant) {
      res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new AppError('UNAUTHORIZED', 'The API key is unknown or revoked');
    }
    res.locals.tenant = tenant;
    next();
  };
}

export const currentTenant = (res: Response): AuthenticatedTenant => res.locals.tenant as AuthenticatedTenant;
