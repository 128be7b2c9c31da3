/**
 * The MQTT broker `npm start` runs in its own process when no MQTT_URL is given: aedes on
 * loopback, no authentication (the pack's iot-mqtt-broker node is the one that checks devices).
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(host: string, port: number): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  const server: Server = createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://${host}:${actualPort}`,
    port: actualPort,
    // aedes first: it ends the client connections that would keep the server open.
    close: () => new Promise<void>((resolve) => broker.close(() => server.close(() => resolve()))),
  };
}
