/**
 * How a message proves it came through iot-mqtt-broker from a device that authenticated at
 * CONNECT, without trusting anything a flow could write into the message.
 *
 * The broker node marks what it delivers with `msg._broker = { node, client, session, device }`:
 * its own node id, the MQTT client id, a random token of that one connection, and the device the
 * publish is attributed to (the device itself, or a sensor of a gateway). A mark proves nothing
 * by itself: iot-device-auth asks the broker node it names whether that connection is still
 * live with that token and may speak for that device, and takes the identity from the broker's
 * answer, never from msg.device.
 */
import type { NodeAPI, NodeMessage } from 'node-red';
import type { DeviceIdentity } from './device';

export const BROKER_PROPERTY = '_broker';

export interface BrokerMark {
  node: string;
  client: string;
  session: string;
  device: string;
}

/** What the broker node offers for checking its marks. */
export interface BrokerIdentitySource {
  identify(mark: BrokerMark): DeviceIdentity | undefined;
}

/** The mark a message carries, if it has the shape of one. */
export function brokerMarkOf(msg: NodeMessage): BrokerMark | undefined {
  const mark = msg[BROKER_PROPERTY] as Partial<BrokerMark> | undefined;
  if (mark === null || typeof mark !== 'object') return undefined;
  const { node, client, session, device } = mark;
  return typeof node === 'string' && typeof client === 'string' && typeof session === 'string' && typeof device === 'string' ? { node, client, session, device } : undefined;
}

/** The identity the named broker node vouches for, or undefined (no such node, dead or forged mark). */
export function identifyByBroker(RED: NodeAPI, mark: BrokerMark): DeviceIdentity | undefined {
  const source = RED.nodes.getNode(mark.node) as Partial<BrokerIdentitySource> | null;
  return source && typeof source.identify === 'function' ? source.identify(mark) : undefined;
}
