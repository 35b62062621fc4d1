import { createsBesideCallbacks } from '../../src/api/creates-beside-callbacks';

/**
 * The controller with a clock the test moves: max 16, target 20 ms beyond the fastest callback, interval
 * 100 ms, quiet after 1 s, pauses from 4 to 100 ms, 10 creates a second faster per good interval, the
 * fastest callback taken over 10–20 s. The fastest callback in these tests takes 5 ms, so 30 ms is slow
 * and 25 ms is not.
 */
function rig() {
  let now = 0;
  const share = createsBesideCallbacks({
    max: 16,
    targetMs: 20,
    intervalMs: 100,
    quietAfterMs: 1_000,
    pauseStartMs: 4,
    pauseMaxMs: 100,
    rateStepPerS: 10,
    baseWindowMs: 10_000,
    now: () => now,
  });
  /** One callback that starts now and takes `ms`; the clock ends at its finish. Returns whether the limit rose or the pause shrank. */
  const callback = (ms: number): boolean => {
    share.callbackStarted();
    now += ms;
    return share.callbackFinished(ms);
  };
  const advance = (ms: number) => {
    now += ms;
  };
  /** A fast callback, then a slow one in each of five intervals: the share is 1 and the pause 8 ms. */
  const slowDownToPause8 = () => {
    callback(5);
    for (let i = 0; i < 5; i++) {
      advance(100);
      callback(30);
    }
    expect([share.limit(), share.pauseMs()]).toEqual([1, 8]);
  };
  return { share, callback, advance, slowDownToPause8 };
}

describe('creates beside callbacks (API_CALLBACK_TARGET_MS)', () => {
  test('when no callback has been seen, then creates have the full limit and no pause', () => {
    const { share } = rig();
    expect(share.limit()).toBe(16);
    expect(share.pauseMs()).toBe(0);
  });

  test('when callbacks start coming, then creates get half the limit', () => {
    const { share } = rig();
    share.callbackStarted();
    expect(share.limit()).toBe(8);
  });

  test('when a callback takes longer than the target beyond the fastest, then the share halves once per interval, down to 1', () => {
    const { share, callback, advance } = rig();
    callback(5);
    callback(30);
    // Within the interval that began with the first callback: no change yet.
    expect(share.limit()).toBe(8);
    advance(100);
    callback(30);
    expect(share.limit()).toBe(4);
    // Another slow one in the same interval does not halve again.
    callback(30);
    expect(share.limit()).toBe(4);
    for (let i = 0; i < 2; i++) {
      advance(100);
      callback(30);
    }
    expect(share.limit()).toBe(1);
    expect(share.pauseMs()).toBe(0);
  });

  test('when callbacks are still slow at a share of 1, then creates keep a pause that doubles per interval, from 4 up to 100 ms', () => {
    const { share, callback, advance } = rig();
    callback(5);
    const pauses: number[] = [];
    for (let i = 0; i < 12; i++) {
      advance(100);
      callback(30);
      pauses.push(share.pauseMs());
    }
    expect(share.limit()).toBe(1);
    expect(pauses).toEqual([0, 0, 0, 4, 8, 16, 32, 64, 100, 100, 100, 100]);
  });

  test('when every callback takes long but none longer than the target beyond the fastest, then creates do not give way', () => {
    const { share, callback, advance } = rig();
    for (let i = 0; i < 10; i++) {
      advance(100);
      callback(40 + (i % 2) * 20);
    }
    expect(share.limit()).toBe(8);
    expect(share.pauseMs()).toBe(0);
  });

  test('when the fastest callback is two windows old, then it no longer counts', () => {
    const { share, callback, advance } = rig();
    callback(5);
    // Every callback now takes 40 ms: slow against 5 ms, until the 5 ms one has left both windows.
    for (let i = 0; i < 50; i++) {
      advance(500);
      callback(40);
    }
    expect(share.pauseMs()).toBe(100);
    const limitBefore = share.limit();
    const pauseBefore = share.pauseMs();
    share.createHeldBack();
    advance(100);
    callback(45);
    expect([share.limit(), share.pauseMs()]).toEqual([limitBefore, 1_000 / (1_000 / pauseBefore + 10)]);
  });

  test('when callbacks keep to the target while creates are held back, then the pause shrinks by 10 creates a second per interval until gone, then the share grows by one up to the full limit, and says when', () => {
    const { share, callback, advance, slowDownToPause8 } = rig();
    slowDownToPause8();
    share.createHeldBack();
    advance(100);
    // 125 creates a second → 135.
    expect(callback(5)).toBe(true);
    expect(share.pauseMs()).toBeCloseTo(1_000 / 135);
    // Same interval: no change.
    share.createHeldBack();
    expect(callback(5)).toBe(false);
    const pauses = [share.pauseMs()];
    while (share.pauseMs() > 0) {
      share.createHeldBack();
      advance(100);
      callback(5);
      pauses.push(share.pauseMs());
    }
    // Under 4 ms (over 250 creates a second) the pause is gone.
    expect(pauses.at(-2)).toBeCloseTo(1_000 / 245);
    expect(pauses.at(-1)).toBe(0);
    expect(share.limit()).toBe(1);
    for (let i = 0; i < 20; i++) {
      share.createHeldBack();
      advance(100);
      callback(5);
    }
    expect(share.limit()).toBe(16);
    share.createHeldBack();
    advance(100);
    expect(callback(5)).toBe(false);
  });

  test('when callbacks keep to the target but no create was held back, then neither the share nor the pause changes', () => {
    const { share, callback, advance, slowDownToPause8 } = rig();
    slowDownToPause8();
    for (let i = 0; i < 10; i++) {
      advance(100);
      expect(callback(5)).toBe(false);
    }
    expect([share.limit(), share.pauseMs()]).toEqual([1, 8]);
  });

  test('when one callback in an interval is slow among fast ones, then the share still halves', () => {
    const { share, callback, advance } = rig();
    share.callbackStarted();
    share.callbackFinished(5);
    callback(30);
    callback(5);
    advance(100);
    callback(5);
    expect(share.limit()).toBe(4);
  });

  test('when no callback has been seen for the quiet time, then creates have the full limit and no pause again, and the next callbacks start from half', () => {
    const { share, callback, advance, slowDownToPause8 } = rig();
    slowDownToPause8();
    advance(999);
    expect([share.limit(), share.pauseMs()]).toEqual([1, 8]);
    advance(1);
    expect([share.limit(), share.pauseMs()]).toEqual([16, 0]);
    share.callbackStarted();
    expect([share.limit(), share.pauseMs()]).toEqual([8, 0]);
  });

  test('when a callback is still in flight after the quiet time, then creates keep their share', () => {
    const { share, advance } = rig();
    share.callbackStarted();
    advance(5_000);
    expect(share.limit()).toBe(8);
  });
});
