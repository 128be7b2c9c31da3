/** Per-key state is kept in typed-array columns indexed by a slot; they grow by copying. */
export function resized<T extends Float64Array | Uint8Array | Uint32Array>(array: T, length: number): T {
  const next = new (array.constructor as new (n: number) => T)(length);
  next.set(array);
  return next;
}
