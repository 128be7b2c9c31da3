/**
 * Refuses an MQTT packet larger than a limit as soon as its fixed header says how large it is,
 * before its bytes are gathered: aedes (1.2) creates mqtt-packet's parser without a maximum, and
 * the parser holds a packet's bytes until all of them have arrived, so a 50 MB publish would sit
 * in memory whole before anything could look at it.
 *
 * This wraps the one parser step that reads the packet's remaining length. It relies on
 * mqtt-packet's parser internals (`_parseLength`, `packet.length`, `_emitError`), checked when
 * the broker starts (parserSupportsLimit) so that an aedes upgrade that moves them fails loudly
 * instead of silently dropping the cap.
 */

interface ParserInternals {
  _parseLength(): boolean;
  _emitError(err: Error): void;
  packet: { length: number; cmd?: string };
}

interface ClientInternals {
  _parser?: Partial<ParserInternals>;
}

export class PacketTooLarge extends Error {
  constructor(
    readonly length: number,
    readonly limit: number,
    readonly cmd: string | undefined,
  ) {
    super(`a ${cmd ?? 'packet'} of ${length} bytes; at most ${limit} are accepted`);
  }
}

function parserOf(client: unknown): Partial<ParserInternals> | undefined {
  return (client as ClientInternals | null)?._parser;
}

/** Whether a connection's parser can be capped (the internals this relies on are there). */
export function parserSupportsLimit(client: unknown): boolean {
  const parser = parserOf(client);
  return typeof parser?._parseLength === 'function' && typeof parser._emitError === 'function';
}

/** Caps the packets a connection may send; `refused` is told before the connection errors. */
export function limitPacketSize(client: unknown, limit: number, refused: (err: PacketTooLarge) => void): void {
  const parser = parserOf(client) as ParserInternals;
  const parseLength = parser._parseLength;
  parser._parseLength = function cappedParseLength(this: ParserInternals): boolean {
    const parsed = parseLength.call(this);
    if (!parsed || this.packet.length <= limit) return parsed;
    const err = new PacketTooLarge(this.packet.length, limit, this.packet.cmd);
    refused(err);
    // The parser stops here and aedes closes the connection on its error.
    this._emitError(err);
    return false;
  };
}
