/**
 * Telling what bytes hold, for nodes that receive raw MQTT or HTTP bodies and hand on something
 * a flow can use.
 */

/** Whether the first non-blank byte opens a JSON object or array. */
export function looksLikeJson(bytes: Buffer): boolean {
  for (const byte of bytes) {
    if (byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09) continue;
    return byte === 0x7b || byte === 0x5b;
  }
  return false;
}

/** Whether the bytes are UTF-8 text without control characters (other than tab and line breaks). */
export function isUtf8Text(bytes: Buffer): boolean {
  const decoded = bytes.toString('utf8');
  return !decoded.includes('\uFFFD') && !/[\u0000-\u0008\u000e-\u001f]/.test(decoded);
}
