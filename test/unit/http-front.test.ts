/**
 * Which request paths npm start's front takes for an `http in` endpoint (and caps at the
 * endpoints' body limit): the node's path as Express matches it.
 */
import { describe, expect, it } from 'vitest';
import { pathPattern } from '../../scripts/http-front';

describe('an http in node’s path', () => {
  it.each([
    ['/anonymous/button', '/anonymous/button', true],
    ['/anonymous/button', '/anonymous/button/', true],
    ['/anonymous/button', '/Anonymous/Button', true],
    ['anonymous/button', '/anonymous/button', true],
    ['/anonymous/button', '/anonymous/buttons', false],
    ['/anonymous/button', '/anonymous', false],
    ['/anonymous/button', '/flows', false],
    ['/devices/:id/readings', '/devices/pump-1/readings', true],
    ['/devices/:id/readings', '/devices//readings', false],
    ['/devices/:id/readings', '/devices/a/b/readings', false],
    ['/report/:day?', '/report', true],
    ['/report/:day?', '/report/2026-12-01', true],
    ['/files/*', '/files/a/b/c', true],
    ['/a.b', '/a.b', true],
    ['/a.b', '/axb', false],
  ])('%s takes %s: %s', (path, request, taken) => {
    expect(pathPattern(path).test(request)).toBe(taken);
  });
});
