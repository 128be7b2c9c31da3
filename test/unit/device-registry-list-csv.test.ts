/**
 * The editor list's CSV import and export (list-csv.ts): the registry file's columns and reader,
 * a list written and read back unchanged, secrets never written, a file of the wrong shape refused.
 */
import { describe, expect, it } from 'vitest';
import { listFromCsv, listToCsv } from '../../nodes/device-registry/list-csv';
import { parseRegistryText } from '../../nodes/device-registry/registry-file';
import { sha256Hex } from '../../nodes/shared/digest';

const HASH = 'a'.repeat(64);

describe('listFromCsv', () => {
  it('reads each device into a row of the list, the API key hash into the API key box', () => {
    const text = `id,enabled,methods,apiKeyHash,gateway,meta,meta.site\r\npump-1,true,apikey hmac,${HASH},gw-1,"{""line"":2}",north\r\npump-2,false,,,,,\r\n`;
    expect(listFromCsv(text)).toEqual([
      { id: 'pump-1', enabled: true, methods: 'apikey hmac', apiKey: HASH, gateway: 'gw-1', meta: '{"line":2,"site":"north"}' },
      { id: 'pump-2', enabled: false },
    ]);
  });

  it('leaves bad values to the editor to mark, as typed', () => {
    expect(listFromCsv('id,meta\npump 1 !,{not json\n')).toEqual([{ id: 'pump 1 !', enabled: true, meta: '{not json' }]);
  });

  it.each([
    ['methods\napikey\n', /line 1: the header needs an id column/],
    ['id,colour\npump-1,red\n', /line 1: unknown field "colour"/],
    ['id,secret\npump-1,0123456789abcdef\n', /line 1: a registry CSV holds no secrets \(secret\)/],
    ['id,enabled\npump-1,maybe\n', /line 2: enabled must be true or false/],
    ['id,meta\npump-1\n', /line 2: 1 field\(s\), the header has 2/],
    ['', /line 1: the file is empty/],
  ])('refuses %j whole', (text, problem) => {
    expect(() => listFromCsv(text)).toThrow(problem);
  });
});

describe('listToCsv', () => {
  it('writes id, enabled and the columns in use, in the registry order, and reads back the same list', () => {
    const devices = [
      { id: 'pump-1', enabled: true, gateway: 'gw-1', methods: 'apikey hmac', meta: '{"site":"north, east"}', apiKey: `sha256:${HASH}` },
      { id: 'pump-2', enabled: false },
    ];
    const text = listToCsv(devices);
    expect(text).toBe(`id,enabled,methods,apiKeyHash,gateway,meta\r\npump-1,true,apikey hmac,sha256:${HASH},gw-1,"{""site"":""north, east""}"\r\npump-2,false,,,,\r\n`);
    expect(listFromCsv(text)).toEqual(devices);
  });

  it('writes a plain API key as its SHA-256 and never a secret: the file is a registry file', () => {
    const text = listToCsv([{ id: 'pump-1', enabled: true, apiKey: 'a-long-plain-api-key', secret: 'a shared secret of the device' } as never]);
    expect(text).toBe(`id,enabled,apiKeyHash\r\npump-1,true,sha256:${sha256Hex('a-long-plain-api-key')}\r\n`);
    expect(parseRegistryText(text, 'csv').map((d) => d.apiKeyHash?.toString('hex'))).toEqual([sha256Hex('a-long-plain-api-key')]);
  });

  it('refuses a short API key, which no registry takes', () => {
    expect(() => listToCsv([{ id: 'pump-1', enabled: true, apiKey: 'short' }])).toThrow(/device 1 \(pump-1\): an API key needs at least 16 characters/);
  });
});
