/**
 * iot-threshold in a real Node-RED that is killed with SIGKILL: an alert raised before the
 * crash is not raised again after the restart, and clears with the same episode id.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { NodeRedProcess } from '../support/node-red-process';
import { eventually } from '../support/wait';

const flow = [
  { id: 'e2e.tab', type: 'tab', label: 'threshold restart' },
  { id: 'e2e.in', type: 'http in', z: 'e2e.tab', url: '/reading', method: 'post', upload: false, wires: [['e2e.threshold']] },
  {
    id: 'e2e.threshold',
    type: 'iot-threshold',
    z: 'e2e.tab',
    property: 'payload',
    propertyType: 'msg',
    field: 'temperature',
    keyProperty: 'payload.id',
    keyPropertyType: 'msg',
    rule: 'above',
    hysteresis: 'explicit',
    levels: [{ severity: 'critical', value: '80', clear: '75' }],
    raiseMode: 'immediate',
    clearMode: 'immediate',
    stateOutput: true,
    persist: true,
    outputs: 4,
    wires: [[], [], ['e2e.answer'], ['e2e.answer']],
  },
  {
    id: 'e2e.answer',
    type: 'function',
    z: 'e2e.tab',
    func: 'msg.payload = { alert: msg.alert || null, state: msg.alertState || null, error: msg.error || null };\nreturn msg;',
    outputs: 1,
    wires: [['e2e.out']],
  },
  { id: 'e2e.out', type: 'http response', z: 'e2e.tab', wires: [] },
];

interface Answer {
  alert: { id: string; change: string; state: string } | null;
  state: { state: string; id?: string } | null;
  error: { code: string } | null;
}

const running: NodeRedProcess[] = [];
afterAll(async () => {
  for (const node of running) await node.dispose();
});

async function reading(node: NodeRedProcess, id: string, temperature: unknown): Promise<Answer> {
  const response = await fetch(`${node.editorUrl}/reading`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ id, temperature }),
  });
  expect(response.status, `reading ${temperature}: ${await response.clone().text()}`).toBe(200);
  return (await response.json()) as Answer;
}

describe('iot-threshold across a crash', () => {
  it('does not raise an alert again after kill -9, and clears it with the same id', async () => {
    const first = await NodeRedProcess.start();
    running.push(first);
    await first.deploy(flow);
    // The flows start a moment after the deploy answers: wait until the endpoint takes readings.
    const endpoint = `${first.editorUrl}/reading`;
    const probe = { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id: 'probe', temperature: 0 }) };
    await eventually('the deployed HTTP endpoint', async () => ((await fetch(endpoint, probe)).status === 200 ? true : undefined));

    expect((await reading(first, 'pump-17', 70)).state?.state).toBe('normal');
    const raised = await reading(first, 'pump-17', 85);
    expect(raised.alert).toMatchObject({ change: 'raised', state: 'raised' });
    expect((await reading(first, 'pump-17', 'hot')).error?.code).toBe('not_numeric');
    await first.crash();

    const second = await NodeRedProcess.start({ dataDir: first.dataDir });
    running.push(second);
    const still = await reading(second, 'pump-17', 90);
    expect(still.alert).toBeNull();
    expect(still.state).toMatchObject({ state: 'raised', id: raised.alert?.id });
    const cleared = await reading(second, 'pump-17', 70);
    expect(cleared.alert).toMatchObject({ change: 'cleared', id: raised.alert?.id });
  });
});
