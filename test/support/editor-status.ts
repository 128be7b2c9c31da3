/**
 * The node statuses an integrator sees in the editor, as the editor gets them: subscribed to
 * `status/#` on Node-RED's comms WebSocket, each change kept with the time it came.
 *
 *   const statuses = await EditorStatus.watch(node.editorUrl);
 *   await statuses.until('out', (s) => s.fill === 'green');
 *   statuses.close();
 */
import { WebSocket } from 'ws';
import { eventually } from './wait';

export interface NodeStatus {
  at: number;
  fill?: string;
  shape?: string;
  text?: string;
}

export class EditorStatus {
  private readonly seen = new Map<string, NodeStatus[]>();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      const at = Date.now();
      const parsed = JSON.parse(data.toString('utf8')) as Array<{ topic: string; data: Omit<NodeStatus, 'at'> }> | { topic: string; data: Omit<NodeStatus, 'at'> };
      for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
        if (!event.topic?.startsWith('status/')) continue;
        const id = event.topic.slice('status/'.length);
        const list = this.seen.get(id) ?? [];
        list.push({ at, ...event.data });
        this.seen.set(id, list);
      }
    });
  }

  static async watch(editorUrl: string): Promise<EditorStatus> {
    const socket = new WebSocket(`${editorUrl.replace(/^http/, 'ws')}/comms`, { origin: editorUrl });
    await new Promise<void>((open, fail) => {
      socket.once('open', () => open());
      socket.once('error', fail);
    });
    socket.send(JSON.stringify({ subscribe: 'status/#' }));
    return new EditorStatus(socket);
  }

  /** Every status a node showed, oldest first. */
  history(id: string): NodeStatus[] {
    return this.seen.get(id) ?? [];
  }

  /** What the node shows now. */
  now(id: string): NodeStatus | undefined {
    return this.history(id).at(-1);
  }

  /** Waits until the node shows a status that `ok` accepts, and returns it. */
  async until(id: string, what: string, ok: (status: NodeStatus) => boolean, timeoutMs = 30_000): Promise<NodeStatus> {
    try {
      return await eventually(`${id} to show ${what}`, () => {
        const status = this.now(id);
        return status && ok(status) ? status : undefined;
      }, timeoutMs, 50);
    } catch (err) {
      throw new Error(`${(err as Error).message}; it shows ${shown(this.now(id))}`);
    }
  }

  close(): void {
    this.socket.close();
  }
}

/** A status as the editor draws it: `yellow ring: retrying …`. */
export function shown(status: NodeStatus | undefined): string {
  return status ? `${status.fill ?? ''} ${status.shape ?? ''}: ${status.text ?? ''}` : '(none)';
}
