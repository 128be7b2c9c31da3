/**
 * iot-salesforce-connection: the settings of one Salesforce org (login URL, authentication,
 * Web-to org id, API guard) and the session every node using it shares. Sessions outlive a
 * redeploy for a minute, so that redeploying a flow does not log in again.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { SalesforceConnection } from '../shared/salesforce-client';
import { readConnectionConfig, sessionKey, type ConnectionCredentials, type ConnectionProperties } from './connection-config';
import { SalesforceSession } from './session';

type ConnectionDef = NodeDef & ConnectionProperties;
type ConnectionNode = Node & SalesforceConnection;

/** Kept after its last node closes, so that a redeploy finds the session and its token. */
const KEEP_AFTER_CLOSE_MS = 60_000;

interface Shared {
  session: SalesforceSession;
  users: number;
  discard?: NodeJS.Timeout;
}

const sessions = new Map<string, Shared>();

export = function register(RED: NodeAPI): void {
  function IotSalesforceConnectionNode(this: ConnectionNode, def: ConnectionDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = readConnectionConfig(def, (node.credentials ?? {}) as ConnectionCredentials);
    if ('problem' in config) {
      node.problem = config.problem;
      // Variables not set are the usual state of an imported example, not a fault of the flow.
      if (config.unsetEnv) node.warn(RED._('iot-salesforce-connection.errors.invalid-config', { message: config.problem }));
      else node.error(RED._('iot-salesforce-connection.errors.invalid-config', { message: config.problem }));
      return;
    }
    const key = sessionKey(config.settings, config.secrets);
    let shared = sessions.get(key);
    if (!shared) {
      shared = { session: new SalesforceSession(config.settings, config.secrets), users: 0 };
      sessions.set(key, shared);
    }
    if (shared.discard) clearTimeout(shared.discard);
    shared.discard = undefined;
    shared.users++;
    node.client = shared.session;
    if (config.settings.method === 'password') node.warn(RED._('iot-salesforce-connection.warnings.password-flow'));

    node.on('close', (done: () => void) => {
      const entry = sessions.get(key);
      if (entry && --entry.users === 0) {
        entry.discard = setTimeout(() => sessions.delete(key), KEEP_AFTER_CLOSE_MS);
        entry.discard.unref();
      }
      done();
    });
  }

  RED.nodes.registerType('iot-salesforce-connection', IotSalesforceConnectionNode, {
    credentials: {
      privateKey: { type: 'password' },
      keyPassphrase: { type: 'password' },
      clientSecret: { type: 'password' },
      refreshToken: { type: 'password' },
      password: { type: 'password' },
      securityToken: { type: 'password' },
      accessToken: { type: 'password' },
    },
  });
};
