/**
 * The iot-summary the fuzz tests drive: the Buffered pattern's per-device minute, open windows
 * kept on disk, time from msg.timestamp.
 */
import summaryNode from '../../nodes/summary/summary';
import type { FuzzOptions } from '../support/fuzz';

export const minute: Omit<FuzzOptions, 'count' | 'seed' | 'message'> = {
  modules: [summaryNode],
  flow: [
    { id: 'sum', type: 'iot-summary', property: 'payload', propertyType: 'msg', fields: 'temperature, battery', keyProperty: '', keyPropertyType: 'device', mode: 'time', windowValue: '1', windowUnit: 'min', timeSource: 'message', graceValue: '0', persist: true, catchErrors: false, wires: [['summaries'], ['errors']] },
    { id: 'summaries', type: 'helper' },
    { id: 'errors', type: 'helper' },
  ],
  under: 'sum',
  outputs: ['summaries'],
  errorOutputs: ['errors'],
  codes: ['no_numeric_reading', 'not_finite', 'late_reading', 'bad_timestamp', 'missing_key', 'invalid_config'],
  // The help: windows are kept per msg.device.id, else per msg.topic; a reading without a usable
  // key is refused (missing_key). A summary for the key "" mixes every device without one.
  judge: (_output, msg) => {
    const key = (msg as { summary?: { key?: unknown } }).summary?.key;
    return typeof key === 'string' && key !== '' ? undefined : `a summary for the key ${JSON.stringify(key)}`;
  },
};

