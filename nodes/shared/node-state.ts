/**
 * A node's state kept across redeploys, restarts and crashes: a StateFile (snapshot + journal) in
 * `<userDir>/iot-state/`, snapshotted when it changed every few seconds and on stop, deleted with
 * the node. A failure to write never stops the node: it is reported once and kept for the status
 * until a later snapshot is written (which holds everything the failed writes held).
 */
import { join } from 'node:path';
import { StateFile, type LoadedState } from './state-file';

export interface NodeStateOptions<S> {
  /** File name, unique per node, e.g. `threshold-<node id>`. */
  name: string;
  /** The whole state, as it is now: taken for each snapshot. */
  current(): S;
  /** The first failure to write (and every new kind after it), in words for the user. */
  onFailure(message: string): void;
  /** A snapshot was written after a failure: the state is saved again. */
  onRecovered?(): void;
  snapshotEveryMs?: number;
}

export class NodeState<S, E> {
  private changedSinceSnapshot = false;
  private failure: string | undefined;
  private failures = 0;
  private readonly snapshotTimer: NodeJS.Timeout;

  private constructor(
    private readonly file: StateFile<S, E>,
    private readonly options: NodeStateOptions<S>,
  ) {
    this.snapshotTimer = setInterval(() => this.snapshotIfChanged(), options.snapshotEveryMs ?? 10_000);
  }

  /** Opens the node's state in userDir and reads what was saved. Throws when the folder cannot be made. */
  static open<S, E>(userDir: string, options: NodeStateOptions<S>): { state: NodeState<S, E>; saved: LoadedState<S, E> } {
    const file = new StateFile<S, E>(join(userDir, 'iot-state'), options.name);
    const saved = file.load();
    return { state: new NodeState(file, options), saved };
  }

  /** What went wrong last when writing, if no snapshot was written since. */
  get problem(): string | undefined {
    return this.failure;
  }

  /** Something changed that the next snapshot must hold. */
  changed(): void {
    this.changedSinceSnapshot = true;
  }

  /** Records a change at once, so that it survives a crash. */
  journal(...entries: E[]): void {
    try {
      this.file.appendAll(entries);
    } catch (err) {
      this.fail(err as Error);
    }
    this.changedSinceSnapshot = true;
  }

  /** The node stops: a last snapshot, or (removed from the flow) every file deleted. */
  async close(removed: boolean): Promise<void> {
    clearInterval(this.snapshotTimer);
    if (removed) {
      await this.file.remove();
      return;
    }
    try {
      this.file.saveSync(this.options.current());
    } catch (err) {
      this.fail(err as Error);
    }
    await this.file.close();
  }

  private snapshotIfChanged(): void {
    if (!this.changedSinceSnapshot) return;
    this.changedSinceSnapshot = false;
    const failuresBefore = this.failures;
    this.file.save(this.options.current()).then(
      () => {
        // A write that failed while this one was under way is not covered by it.
        if (this.failure === undefined || this.failures !== failuresBefore) return;
        this.failure = undefined;
        this.options.onRecovered?.();
      },
      (err: Error) => this.fail(err),
    );
  }

  private fail(err: Error): void {
    if (this.failure !== err.message) this.options.onFailure(err.message);
    this.failure = err.message;
    this.failures++;
  }
}
