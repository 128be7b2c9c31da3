/**
 * The buffer's delivery window (nodes/buffer/window.ts) driven directly: what the queue tests
 * reach only through whole deliveries. Gaps found by mutation testing (npm run mutation).
 */
import { describe, expect, it } from 'vitest';
import { DeliveryWindow } from '../../nodes/buffer/window';

describe('the delivery window', () => {
  it('set by the user stays what the user set, whatever settles fast or fails', () => {
    const window = new DeliveryWindow({ fixed: 50 });
    for (let t = 1; t <= 100; t++) window.settled(10, 5, true, t);
    expect(window.size(100)).toBe(50);
    for (let i = 0; i < 10; i++) window.failed();
    window.announce('sink', 500, 100);
    expect(window.size(100)).toBe(50);
  });

  it('ignores an announcement of no capacity, a negative one or not a number, keeping what it had', () => {
    const window = new DeliveryWindow({});
    for (const bad of [0, 0.5, -10, Number.NaN, Number.POSITIVE_INFINITY]) window.announce(`bad ${bad}`, bad, 0);
    expect(window.size(0)).toBe(100);
    window.announce('sink', 40, 0);
    window.announce('sink', 0, 1);
    expect(window.size(1)).toBe(40);
  });

  it('counts an announcement for 30 s, not past', () => {
    const window = new DeliveryWindow({});
    window.announce('sink', 40, 0);
    expect(window.size(30_000)).toBe(40);
    expect(window.size(30_001)).toBe(100);
  });

  it('grows again once a sink that slowed for good keeps that pace: the shortest round trip is renewed every 10 s', () => {
    const window = new DeliveryWindow({});
    // Fast at first: every settlement grows the window.
    window.settled(10, 10, true, 0);
    expect(window.size(0)).toBe(110);
    // The sink slows to 100 ms a round trip: above twice the shortest, the window stops growing.
    let now = 1;
    for (; now < 5_000; now += 100) window.settled(10, 100, true, now);
    const stalled = window.size(now);
    for (; now < 9_000; now += 100) window.settled(10, 100, true, now);
    expect(window.size(now)).toBe(stalled);
    // Past the period the slow pace is the new shortest, and the window grows with it again.
    for (; now < 25_000; now += 100) window.settled(10, 100, true, now);
    expect(window.size(now)).toBeGreaterThan(stalled);
  });
});
