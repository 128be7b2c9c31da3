/**
 * A server program run as a child process: started, waited for until it answers, stopped with
 * SIGTERM (SIGKILL after 10 s), its output kept for error messages. The tests' services and
 * `npm start`'s managed time-series store both run their servers with it.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';

export interface ServerCommand {
  program: string;
  args: string[];
  /** Resolves true once the server answers. */
  ready(): Promise<boolean>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class ServerProcess {
  private child: ChildProcess | undefined;
  private log: string[] = [];

  /**
   * `ownProcessGroup`: a Ctrl-C in the terminal does not reach the server, so that its owner can
   * stop it last, after whatever still writes to it.
   * `logFile`: the server's output goes to this file instead of a pipe, so that the server outlives
   * an owner killed with SIGKILL: a program writing to a pipe whose reader is gone dies of SIGPIPE
   * (a Go server as well, on its standard output and error), losing what it holds in memory.
   */
  constructor(
    readonly name: string,
    private readonly command: () => ServerCommand,
    private readonly cwd: string,
    private readonly options: { ownProcessGroup?: boolean; logFile?: string } = {},
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the server (again) and waits until it answers. */
  async start(timeoutMs = 30_000): Promise<void> {
    if (this.running) return;
    const { program, args, ready } = this.command();
    this.log = [];
    const logFd = this.options.logFile === undefined ? undefined : openSync(this.options.logFile, 'w');
    const stdio: StdioOptions = logFd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', logFd, logFd];
    let child: ChildProcess;
    try {
      child = spawn(program, args, { cwd: this.cwd, stdio, detached: this.options.ownProcessGroup === true });
    } finally {
      if (logFd !== undefined) closeSync(logFd);
    }
    this.child = child;
    const keep = (chunk: Buffer) => {
      this.log.push(chunk.toString());
      if (this.log.length > 200) this.log.splice(0, this.log.length - 200);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let spawnError: Error | undefined;
    child.once('error', (err) => {
      spawnError = err;
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`${this.name} could not be started (${program}): ${spawnError.message}`);
      if (!this.running) throw new Error(`${this.name} exited at start (code ${child.exitCode}, signal ${child.signalCode}):\n${this.logTail()}`);
      if (await ready().catch(() => false)) return;
      await sleep(100);
    }
    await this.stop();
    throw new Error(`${this.name} did not answer within ${timeoutMs} ms:\n${this.logTail()}`);
  }

  /** Stops the server; its data stays. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  }

  logTail(lines = 40): string {
    let text = this.log.join('');
    if (this.options.logFile !== undefined) {
      try {
        text = readFileSync(this.options.logFile, 'utf8');
      } catch {
        text = '';
      }
    }
    return text.split('\n').slice(-lines).join('\n');
  }
}

/** A port nothing listens on now (the server may still lose a race for it: callers retry). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
