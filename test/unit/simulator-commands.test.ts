/**
 * What a simulated device does with a command it receives (simulator/commanded-device.ts): an id
 * once, never after its expiry, unknown names and bad arguments failed.
 */
import { describe, expect, it } from 'vitest';
import { decide } from '../../simulator/commanded-device';

const NOW = Date.parse('2026-12-02T12:00:00Z');
const LATER = '2026-12-02T13:00:00Z';

describe('a simulated device deciding about a command', () => {
  it('executes a known command with good arguments before its expiry', () => {
    expect(decide({ id: 'c1', name: 'set_interval', args: { seconds: 5 }, expiresAt: LATER }, new Set(), NOW)).toEqual({ execute: 'set_interval' });
    expect(decide({ id: 'c2', name: 'reboot', expiresAt: LATER }, new Set(), NOW)).toEqual({ execute: 'reboot' });
    expect(decide({ id: 'c3', name: 'set_threshold', args: { temperature: 80 } }, new Set(), NOW)).toEqual({ execute: 'set_threshold' });
    expect(decide({ id: 'c4', name: 'light', args: { on: true, colour: '#ff0000' } }, new Set(), NOW)).toEqual({ execute: 'light' });
  });

  it('answers a repeat done without executing it again, even past its expiry', () => {
    expect(decide({ id: 'c1', name: 'reboot', expiresAt: '2026-12-02T11:00:00Z' }, new Set(['c1']), NOW)).toEqual({ answer: { id: 'c1', status: 'done', result: 'executed before' } });
  });

  it('answers a command at or past its expiry expired', () => {
    expect(decide({ id: 'c1', name: 'reboot', expiresAt: new Date(NOW).toISOString() }, new Set(), NOW)).toMatchObject({ answer: { id: 'c1', status: 'expired' } });
    expect(decide({ id: 'c1', name: 'reboot', expiresAt: 'not a time' }, new Set(), NOW)).toMatchObject({ answer: { status: 'expired' } });
  });

  it('fails unknown names and bad arguments, saying why', () => {
    expect(decide({ id: 'c1', name: 'self_destruct' }, new Set(), NOW)).toMatchObject({ answer: { status: 'failed', reason: expect.stringMatching(/^unknown command self_destruct \(known: set_interval, reboot/) } });
    expect(decide({ id: 'c1', name: 'set_interval', args: { seconds: 0 } }, new Set(), NOW)).toMatchObject({ answer: { status: 'failed', reason: expect.stringContaining('seconds') } });
    expect(decide({ id: 'c1', name: 'set_interval', args: { seconds: '5' } }, new Set(), NOW)).toMatchObject({ answer: { status: 'failed' } });
    expect(decide({ id: 'c1', name: 'set_threshold', args: {} }, new Set(), NOW)).toMatchObject({ answer: { status: 'failed', reason: expect.stringContaining('temperature') } });
    expect(decide({ id: 'c1', name: 'light', args: { on: 'yes' } }, new Set(), NOW)).toMatchObject({ answer: { status: 'failed' } });
  });
});
