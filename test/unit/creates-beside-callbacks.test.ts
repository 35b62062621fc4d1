import { createsBesideCallbacks } from '../../src/api/creates-beside-callbacks';

/** The controller with a clock the test moves: max 16, target 20 ms, interval 100 ms, quiet after 1 s. */
function rig() {
  let now = 0;
  const share = createsBesideCallbacks({ max: 16, targetMs: 20, intervalMs: 100, quietAfterMs: 1_000, now: () => now });
  /** One callback that starts now and takes `ms`; the clock ends at its finish. Returns whether the limit rose. */
  const callback = (ms: number): boolean => {
    share.callbackStarted();
    now += ms;
    return share.callbackFinished(ms);
  };
  const advance = (ms: number) => {
    now += ms;
  };
  return { share, callback, advance };
}

describe('creates beside callbacks (API_CALLBACK_TARGET_MS)', () => {
  test('when no callback has been seen, then creates have the full limit', () => {
    expect(rig().share.limit()).toBe(16);
  });

  test('when callbacks start coming, then creates get half the limit', () => {
    const { share } = rig();
    share.callbackStarted();
    expect(share.limit()).toBe(8);
  });

  test('when a callback takes longer than the target, then the share halves once per interval, down to 1', () => {
    const { share, callback, advance } = rig();
    advance(1_000);
    callback(30);
    // Within the interval that began with the first callback: no change yet.
    expect(share.limit()).toBe(8);
    advance(100);
    callback(30);
    expect(share.limit()).toBe(4);
    // Another slow one in the same interval does not halve again.
    callback(30);
    expect(share.limit()).toBe(4);
    for (let i = 0; i < 5; i++) {
      advance(100);
      callback(30);
    }
    expect(share.limit()).toBe(1);
  });

  test('when callbacks keep to the target, then the share grows by one per interval up to the full limit, and says when it rose', () => {
    const { share, callback, advance } = rig();
    share.callbackStarted();
    advance(100);
    expect(share.callbackFinished(5)).toBe(true);
    expect(share.limit()).toBe(9);
    // Same interval: no change.
    expect(callback(5)).toBe(false);
    for (let i = 0; i < 20; i++) {
      advance(100);
      callback(5);
    }
    expect(share.limit()).toBe(16);
    advance(100);
    expect(callback(5)).toBe(false);
  });

  test('when one callback in an interval is slow among fast ones, then the share still halves', () => {
    const { share, callback, advance } = rig();
    share.callbackStarted();
    share.callbackFinished(5);
    callback(25);
    callback(5);
    advance(100);
    callback(5);
    expect(share.limit()).toBe(4);
  });

  test('when no callback has been seen for the quiet time, then creates have the full limit again, and the next callbacks start from half', () => {
    const { share, callback, advance } = rig();
    for (let i = 0; i < 4; i++) {
      advance(100);
      callback(30);
    }
    expect(share.limit()).toBe(1);
    advance(999);
    expect(share.limit()).toBe(1);
    advance(1);
    expect(share.limit()).toBe(16);
    share.callbackStarted();
    expect(share.limit()).toBe(8);
  });

  test('when a callback is still in flight after the quiet time, then creates keep their share', () => {
    const { share, advance } = rig();
    share.callbackStarted();
    advance(5_000);
    expect(share.limit()).toBe(8);
  });
});
