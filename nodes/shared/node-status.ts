/**
 * A node's status line, one way for the whole pack. Its colour tells the node's state as core
 * MQTT's nodes do: green while it works, yellow while it works degraded or retries (the text says
 * what, and until when), red while it fails or is set up wrongly, grey before it has started or
 * while it has had nothing to do. The shape follows the colour (a dot while working, a ring
 * otherwise), so that the two never tell different stories. What the node counts or holds goes in
 * the text, never in the colour: a raised alert is news about a device, not about the node.
 *
 * A StatusLine redraws at most once per interval however often it is told of a change (a status
 * per message would flood the editor's connection), and only when the line changed.
 */
import { throttled, type Throttled } from './throttle';

export type StatusFill = 'green' | 'yellow' | 'red' | 'grey';

export interface NodeStatus {
  fill: StatusFill;
  shape: 'dot' | 'ring';
  text: string;
}

/** Working as it should. */
export function working(text: string): NodeStatus {
  return { fill: 'green', shape: 'dot', text };
}

/** Working, but degraded or retrying: the text says what, and until when. */
export function degraded(text: string): NodeStatus {
  return { fill: 'yellow', shape: 'ring', text };
}

/** Failing, or set up wrongly. */
export function failing(text: string): NodeStatus {
  return { fill: 'red', shape: 'ring', text };
}

/** Not started yet, or nothing to do so far. */
export function idle(text: string): NodeStatus {
  return { fill: 'grey', shape: 'ring', text };
}

/** What a Node-RED node offers for its status. */
export interface StatusTarget {
  status(status: NodeStatus): void;
}

export class StatusLine {
  private shown = '';
  private stopped = false;
  private readonly redraw: Throttled;

  /** `current` says what the line is now; undefined leaves it as it is. */
  constructor(
    private readonly node: StatusTarget,
    private readonly current: () => NodeStatus | undefined,
    everyMs: number,
  ) {
    this.redraw = throttled(() => this.draw(), everyMs);
  }

  /**
   * Something the line shows changed: it is redrawn within the interval. Called from `current`
   * itself, it looks again after the interval (a line that changes with time alone: an age, a
   * retry time).
   */
  changed(): void {
    if (!this.stopped) this.redraw.schedule();
  }

  /** Redraws now: at start, or a change that must show at once. */
  now(): void {
    if (!this.stopped) this.redraw.now();
  }

  /** The node closes: nothing more is drawn. */
  stop(): void {
    this.stopped = true;
    this.redraw.cancel();
  }

  private draw(): void {
    const status = this.current();
    if (status === undefined) return;
    const key = `${status.fill} ${status.shape} ${status.text}`;
    if (key === this.shown) return;
    this.shown = key;
    this.node.status(status);
  }
}
