/**
 * How long to wait before attempt `attempt` (1 for the first retry): exponential with full
 * jitter between half and all of base * 2^(attempt - 1), capped at maxMs, so that many clients
 * do not come back together.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
