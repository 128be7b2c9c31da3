/**
 * The writer node's editor properties to options (nodes/timeseries-out/node-config.ts).
 */
import { describe, expect, it } from 'vitest';
import { SettingsError } from '../../nodes/shared/settings';
import { batcherOptions, mappingOptions, tagRows } from '../../nodes/timeseries-out/node-config';

describe('writer options', () => {
  it('has the defaults the issue asks for', () => {
    expect(batcherOptions({})).toEqual({
      batchSize: 5000,
      lingerMs: 5,
      flushIntervalMs: 1000,
      maxInFlight: 4,
      maxPending: 100_000,
      retry: { initialDelayMs: 1000, maxDelayMs: 30_000, giveUpAfterMs: 300_000 },
    });
    expect(mappingOptions({}, 'ns')).toEqual({
      precision: 'ns',
      timeUnit: 'ms',
      integerFields: new Set(),
      text: 'skip',
      valueField: 'value',
      tagKeys: new Set(),
      timeField: 'timestamp',
      arrivalTime: false,
    });
  });

  it('reads what the editor saves, as text', () => {
    expect(batcherOptions({ batchSize: '100', flushInterval: '250', maxInFlight: '1', maxPending: '1000', retryMaxDelay: '5', giveUpAfter: '0' })).toMatchObject({
      batchSize: 100,
      flushIntervalMs: 250,
      maxInFlight: 1,
      maxPending: 1000,
      retry: { maxDelayMs: 5000, giveUpAfterMs: 0 },
    });
    const mapping = mappingOptions({ integerFields: 'count, rssi\nsteps', tagKeys: 'sensor', text: 'numeric', valueField: '', timeType: 'field', time: 'ts', timeUnit: 's' }, 'ms');
    expect([...mapping.integerFields]).toEqual(['count', 'rssi', 'steps']);
    expect(mapping).toMatchObject({ text: 'numeric', valueField: '', timeField: 'ts', timeUnit: 's' });
    // Whatever the message's time is read from, the reading's own time comes first and is no value.
    expect(mappingOptions({ timeType: 'msg', time: 'measuredAt' }, 'ms')).toMatchObject({ timeField: 'timestamp', arrivalTime: false });
    expect(mappingOptions({ timeType: 'arrival' }, 'ms')).toMatchObject({ timeField: 'timestamp', arrivalTime: true });
  });

  it.each([
    [() => batcherOptions({ batchSize: '0' }), /batch size/],
    [() => batcherOptions({ maxPending: '1.5' }), /pending points/],
    [() => batcherOptions({ giveUpAfter: '-1' }), /give up after/],
    [() => mappingOptions({ timeUnit: 'h' }, 'ms'), /time unit/],
    [() => mappingOptions({ text: 'maybe' }, 'ms'), /text handling/],
    [() => tagRows([{ name: ' ', value: 'x', type: 'str' }]), /needs a name/],
  ])('refuses bad values (%#)', (build, message) => {
    expect(build).toThrow(SettingsError);
    expect(build).toThrow(message);
  });

  it('trims tag rows and reads name lists', () => {
    expect(tagRows([{ name: ' site ', value: 'plant-1', type: '' }])).toEqual([{ name: 'site', value: 'plant-1', type: 'str' }]);
    expect(mappingOptions({ integerFields: ' a, b ,,c ' }, 'ms').integerFields).toEqual(new Set(['a', 'b', 'c']));
  });
});
