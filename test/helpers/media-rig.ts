import { MediaServer } from './media-server';
import { startTestService, type TestService } from './test-service';

/** What a media-check test runs against; every field is set once `beforeAll` has run. */
export interface MediaRig {
  /** The whole service, started with the test's environment (MEDIA_PRECHECK and friends). */
  service: TestService;
  /** A media server on loopback serving the files the test names. */
  media: MediaServer;
  /** Authorization header value of a tenant of the service. */
  auth: string;
}

/** Registers the `beforeAll`/`afterAll` every media-check block needs: media server, service, tenant. */
export function useMediaRig(env: Record<string, string>): MediaRig {
  const rig = {} as MediaRig;
  beforeAll(async () => {
    rig.media = await new MediaServer().start();
    rig.service = await startTestService({ env });
    rig.auth = (await rig.service.createTenant()).auth;
  });
  afterAll(async () => {
    await rig.service?.stop();
    await rig.media?.stop();
  });
  return rig;
}
