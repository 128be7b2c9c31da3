/**
 * The simulator's device physics: repeatable, realistic, and the packed payload round trip.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, DeviceModel, GatewayModel, packReading, Random, unpackReading } from '../../simulator/devices';

describe('simulated devices', () => {
  it('repeat exactly for the same seed', () => {
    const run = (seed: number) => {
      const device = new DeviceModel('d', new Random(seed));
      return Array.from({ length: 200 }, () => device.step());
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it('drift near normal, run hot during an excursion, and drain their battery', () => {
    const device = new DeviceModel('d', new Random(1), { ...DEFAULT_MODEL, excursionChance: 0, silenceChance: 0 });
    const calm = Array.from({ length: 50 }, () => device.step()!);
    expect(Math.max(...calm.map((r) => r.temperature))).toBeLessThan(70);
    device.overheat();
    const hot = Array.from({ length: 10 }, () => device.step()!);
    expect(Math.max(...hot.map((r) => r.temperature))).toBeGreaterThan(85);
    expect(hot.at(-1)!.battery).toBeLessThan(calm[0].battery);
  });

  it('go silent for a number of steps, then report again', () => {
    const device = new DeviceModel('d', new Random(3), { ...DEFAULT_MODEL, silenceChance: 0 });
    device.goSilent(5);
    const steps = Array.from({ length: 7 }, () => device.step());
    expect(steps.slice(0, 5)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(steps[5]).toBeDefined();
  });

  it('gateways send their sensors in time order, each with its own timestamp', () => {
    const gateway = new GatewayModel('gw-1', 8, new Random(5), { ...DEFAULT_MODEL, silenceChance: 0 });
    const batch = gateway.batch(1_000_000, 8_000);
    expect(batch.readings.map((r) => r.sensor)).toEqual(Array.from({ length: 8 }, (_, i) => `gw-1:s-0${i + 1}`));
    const times = batch.readings.map((r) => r.timestamp);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(times.at(-1)).toBe(1_000_000);
  });

  it('pack a reading into 6 bytes of hex and back', () => {
    for (const reading of [{ temperature: 21.4, battery: 3.3 }, { temperature: -12.7, battery: 2.9 }, { temperature: 92.1, battery: 3.62 }]) {
      const hex = packReading(reading, 513);
      expect(hex).toMatch(/^[0-9a-f]{12}$/);
      expect(unpackReading(hex)).toEqual({ temperature: reading.temperature, battery: Math.round(reading.battery * 50) / 50, sequence: 513 });
    }
    expect(packReading({ temperature: 21.4, battery: 3.3 }, 1)).toBe('0100d6a50001');
    expect(() => unpackReading('02ffff')).toThrow(/not a version 1 payload/);
  });
});
