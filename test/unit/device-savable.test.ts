/** What a threshold or summary node keeps of msg.device for its saved state (nodes/shared/device.ts). */
import { describe, expect, it } from 'vitest';
import { savableDevice } from '../../nodes/shared/device';

describe('savableDevice', () => {
  const device = { id: 'pump-01', method: 'hmac', claims: { site: 'north', zones: [1, 2] }, meta: { thresholds: { temperature: { high: 80 } } } };

  it('copies a device as JSON, apart from the message', () => {
    const copy = savableDevice(device);
    expect(copy).toEqual(device);
    expect(copy).not.toBe(device);
  });

  it('keeps the copy from the last reading while the device is the same', () => {
    const kept = savableDevice(device);
    expect(savableDevice(structuredClone(device), kept)).toBe(kept);
  });

  it('copies again when the device changed or JSON would change it', () => {
    const kept = savableDevice(device);
    for (const changed of [
      { ...device, meta: { thresholds: { temperature: { high: 85 } } } },
      { ...device, claims: { site: 'north', zones: [1, 2, 3] } },
      { ...device, gateway: 'gw-1' },
      { ...device, gateway: undefined },
      { ...device, claims: { site: 'north', zones: [1, Number.NaN] } },
      { ...device, claims: { site: new Date(0), zones: [1, 2] } },
    ]) {
      const copy = savableDevice(changed, kept);
      expect(copy).not.toBe(kept);
      expect(copy).toEqual(JSON.parse(JSON.stringify(changed)));
    }
  });

  it('keeps nothing for a device JSON cannot hold', () => {
    const cyclic: Record<string, unknown> = { id: 'pump-01' };
    cyclic.self = cyclic;
    expect(savableDevice(cyclic, savableDevice(device))).toBeUndefined();
  });
});
