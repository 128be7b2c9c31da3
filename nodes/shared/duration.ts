/**
 * Durations and times of day as people read them in status lines, logs and alert texts: one way
 * for the whole pack.
 */

/** 450 ms, 45 s, 10 min, 1 h 30 min, 2 d 3 h. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 === 0 ? `${m} min` : `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}

/** The local time of day of an instant (ms since epoch), as 14:05:09: "until when" in a status. */
export function formatTimeOfDay(at: number): string {
  return new Date(at).toTimeString().slice(0, 8);
}
