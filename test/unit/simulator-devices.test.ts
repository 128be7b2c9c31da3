/**
 * The simulator's device physics: repeatable, realistic, and the packed payload round trip.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, DeviceModel, GatewayModel, packReading, Random, SWAP_AT, unpackReading, type BatteryKind, type DeviceModelOptions } from '../../simulator/devices';

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
    const device = new DeviceModel('d', new Random(1), { ...DEFAULT_MODEL, excursionChance: 0, silenceChance: 0, batteryKinds: { fast: 0, swapped: 0, flat: 0 } });
    const calm = Array.from({ length: 50 }, () => device.step()!);
    expect(Math.max(...calm.map((r) => r.temperature))).toBeLessThan(70);
    device.overheat();
    const hot = Array.from({ length: 10 }, () => device.step()!);
    expect(Math.max(...hot.map((r) => r.temperature))).toBeGreaterThan(85);
    expect(hot.at(-1)!.battery).toBeLessThan(calm[0].battery);
  });

  describe('batteries', () => {
    const only = (kind: Exclude<BatteryKind, 'steady'> | 'steady'): DeviceModelOptions => ({
      ...DEFAULT_MODEL,
      silenceChance: 0,
      batteryKinds: { fast: kind === 'fast' ? 1 : 0, swapped: kind === 'swapped' ? 1 : 0, flat: kind === 'flat' ? 1 : 0 },
    });
    const batteries = (device: DeviceModel, steps: number) => Array.from({ length: steps }, () => device.step()?.battery as number);

    it('come in four kinds, in the model shares, the same for the same seed', () => {
      const kinds = (seed: number) => {
        const random = new Random(seed);
        return Array.from({ length: 1000 }, (_, i) => new DeviceModel(`d${i}`, random).batteryKind);
      };
      const count = (kind: BatteryKind) => kinds(4).filter((k) => k === kind).length;
      expect(kinds(4)).toEqual(kinds(4));
      expect([count('fast'), count('swapped'), count('flat'), count('steady')].map((n) => Math.round(n / 50))).toEqual([5, 4, 3, 8]);
    });

    it('fast ones decline about five times as fast as steady ones', () => {
      const steady = batteries(new DeviceModel('s', new Random(2), only('steady')), 100);
      const fast = batteries(new DeviceModel('f', new Random(2), only('fast')), 100);
      const drop = (series: number[]) => series[0] - (series.at(-1) as number);
      expect(drop(fast) / drop(steady)).toBeGreaterThan(3.5);
      expect(drop(fast) / drop(steady)).toBeLessThan(7);
    });

    it('swapped ones decline fast until nearly flat, recover once with a new battery, then decline steadily', () => {
      const device = new DeviceModel('w', new Random(3), only('swapped'));
      const series = batteries(device, 400);
      const jump = series.findIndex((v, i) => i > 0 && v - series[i - 1] > 0.2);
      expect(jump).toBeGreaterThan(0);
      expect(series[jump - 1]).toBeLessThanOrEqual(SWAP_AT + 0.003);
      expect(Math.min(...series)).toBeGreaterThan(3.3);
      expect(series[jump]).toBeGreaterThan(3.5);
      expect(device.batterySwaps).toBe(1);
      const after = series.slice(jump);
      expect((after[0] - (after.at(-1) as number)) / after.length).toBeLessThan(0.0008);
      expect(after.at(-1)).toBeLessThan(after[0]);
    });

    it('flat ones hold their voltage, read with noise', () => {
      const series = batteries(new DeviceModel('n', new Random(4), only('flat')), 500);
      const mean = series.reduce((a, b) => a + b, 0) / series.length;
      const spread = Math.sqrt(series.reduce((a, b) => a + (b - mean) ** 2, 0) / series.length);
      expect(Math.abs(series.slice(0, 100).reduce((a, b) => a + b, 0) / 100 - series.slice(400).reduce((a, b) => a + b, 0) / 100)).toBeLessThan(0.005);
      expect(spread).toBeGreaterThan(0.008);
      expect(Math.max(...series) - Math.min(...series)).toBeLessThanOrEqual(0.041);
    });
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
