/**
 * The ceiling of the pattern benchmark, its consuming half, in a process of its own (so that its
 * CPU time and memory are measured as Node-RED's are): a bare mqtt.js subscriber at QoS 1 feeding
 * the @influxdata/influxdb-client WriteApi, with no authentication and no durability.
 *
 *   node dist/bench/bare-subscriber.js <mqtt url> <store url>
 *
 * Prints "ready" once subscribed; writes what is still buffered and exits on SIGTERM.
 */
import { InfluxDB, Point, setLogger } from '@influxdata/influxdb-client';
import mqtt from 'mqtt';
import { BARE_CHAIN_WRITES, READINGS_MEASUREMENT, READINGS_TOPIC } from './pattern-load';

async function main(): Promise<void> {
  const [mqttUrl, storeUrl] = process.argv.slice(2);
  if (!mqttUrl || !storeUrl) throw new Error('usage: bare-subscriber <mqtt url> <store url>');
  setLogger({ error: (message) => console.error(`[influxdb-client] ${message}`), warn: () => undefined });
  const writer = new InfluxDB({ url: storeUrl }).getWriteApi('iot', 'bench', 'ms', BARE_CHAIN_WRITES);
  const client = await mqtt.connectAsync(mqttUrl, { clientId: 'bench-bare-subscriber', clean: true, reconnectPeriod: 0 });
  client.on('message', (topic, payload) => {
    const reading = JSON.parse(payload.toString()) as { temperature: number; battery: number; timestamp: number };
    writer.writePoint(new Point(READINGS_MEASUREMENT).tag('device', topic.split('/')[1]).floatField('temperature', reading.temperature).floatField('battery', reading.battery).timestamp(reading.timestamp));
  });
  await client.subscribeAsync(READINGS_TOPIC, { qos: 1 });
  process.once('SIGTERM', () => {
    Promise.all([writer.close(), client.endAsync()]).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
  console.log('ready');
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
