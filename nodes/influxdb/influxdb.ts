/**
 * iot-influxdb: the connection to a store that speaks an InfluxDB write API, shared by every
 * iot-timeseries-out node that names it. It checks the settings once, holds the HTTP connections,
 * and keeps the token and password in Node-RED credentials.
 */
import { setLogger } from '@influxdata/influxdb-client';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { LogSummary } from '../shared/log-summary';
import { settingsFromProperties, StoreWriter, type StoreConfigNode, type StoreCredentials, type StoreProperties } from './store-writer';

type InfluxdbDef = NodeDef & StoreProperties;

/** How long a stopping connection waits for the writes under way. */
const CLOSE_WAIT_MS = 10_000;
const LOG_INTERVAL_MS = 60_000;

export = function register(RED: NodeAPI): void {
  // The client library prints to the console by itself; its few lines go to Node-RED's log instead,
  // once a minute at most for the same kind.
  const libraryLog = new LogSummary(LOG_INTERVAL_MS);
  setLogger({
    error: (message: string) => libraryLog.report(`error ${message}`, `[influxdb-client] ${message}`, (text) => RED.log.error(text)),
    warn: (message: string) => libraryLog.report(`warn ${message}`, `[influxdb-client] ${message}`, (text) => RED.log.warn(text)),
  });

  function IotInfluxdbNode(this: Node & StoreConfigNode, def: InfluxdbDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    let writer: StoreWriter | undefined;
    try {
      const settings = settingsFromProperties(def);
      writer = new StoreWriter(settings, (node.credentials ?? {}) as StoreCredentials);
      node.store = writer;
      if (settings.insecure && settings.url.startsWith('https:')) node.warn(RED._('iot-influxdb.errors.insecure', { url: settings.url }));
    } catch (err) {
      node.problem = (err as Error).message;
      node.warn(RED._('iot-influxdb.errors.invalid-config', { message: node.problem }));
    }

    node.on('close', (done: () => void) => {
      if (!writer) {
        done();
        return;
      }
      writer.close(CLOSE_WAIT_MS).finally(done);
    });
  }

  RED.nodes.registerType('iot-influxdb', IotInfluxdbNode, {
    credentials: {
      token: { type: 'password' },
      username: { type: 'text' },
      password: { type: 'password' },
    },
  });
};
