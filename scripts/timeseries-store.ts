/**
 * The time-series store `npm start` gives the flows: INFLUX_URL when it is set; otherwise a
 * managed victoria-metrics (or influxd 1.x) on loopback with its data beside the user directory;
 * otherwise none, said plainly, while the flows' writers report that no store is reachable and
 * buffers hold the points. The example flows write with the InfluxDB v1 API to the database
 * `iot`, which both stores accept.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, ServerProcess, type ServerCommand } from './server-process';
import { createInfluxDatabase, INFLUXD, influxdbCommand, VICTORIA_METRICS, victoriaMetricsCommand } from './time-series-servers';

export const EXAMPLE_DATABASE = 'iot';

export interface TimeSeriesStore {
  url: string;
  /** For the start-up banner. */
  description: string;
  close(): Promise<void>;
}

interface Candidate {
  name: string;
  binary: string;
  port: number;
  command(dataDir: string, host: string, port: number): ServerCommand;
  prepare?(url: string): Promise<void>;
}

const CANDIDATES: Candidate[] = [
  { name: 'victoria-metrics', binary: VICTORIA_METRICS, port: 8428, command: victoriaMetricsCommand },
  { name: 'influxdb', binary: INFLUXD, port: 8086, command: influxdbCommand, prepare: (url) => createInfluxDatabase(url, EXAMPLE_DATABASE) },
];

export async function startTimeSeriesStore(host: string, dataDir: string): Promise<TimeSeriesStore> {
  if (process.env.INFLUX_URL) return { url: process.env.INFLUX_URL, description: 'from INFLUX_URL', close: async () => undefined };
  const candidate = CANDIDATES.find((c) => existsSync(c.binary));
  if (!candidate) {
    // The flows still get a URL: their writers say nothing answers there, and buffers hold on.
    process.env.INFLUX_URL = `http://${host}:${CANDIDATES[0].port}`;
    return {
      url: process.env.INFLUX_URL,
      description: 'none running: install victoria-metrics (sudo apt-get install victoria-metrics) or set INFLUX_URL',
      close: async () => undefined,
    };
  }
  const wanted = Number(process.env.INFLUX_PORT ?? candidate.port);
  const port = wanted === 0 ? await freePort(host) : wanted;
  const dir = join(dataDir, candidate.name);
  mkdirSync(dir, { recursive: true });
  await stopLeftover(join(dir, 'pid'), candidate.binary, candidate.name);
  // Its own process group: Node-RED's writers flush to it while they stop on a Ctrl-C. Its output
  // in a file: it outlives an npm start killed with SIGKILL until the next start stops it.
  const server = new ServerProcess(candidate.name, () => candidate.command(dir, host, port), dir, { ownProcessGroup: true, logFile: join(dir, 'output.log') });
  await server.start();
  writeFileSync(join(dir, 'pid'), String(server.pid));
  const url = `http://${host}:${port}`;
  await candidate.prepare?.(url);
  process.env.INFLUX_URL = url;
  return {
    url,
    description: `managed ${candidate.name}, data in ${dir}`,
    close: async () => {
      await server.stop();
      rmSync(join(dir, 'pid'), { force: true });
    },
  };
}

/** Stops a managed store that an npm start killed with SIGKILL left running on this data folder (tests clean up with it). */
export async function stopLeftoverStore(dataDir: string): Promise<void> {
  for (const candidate of CANDIDATES) await stopLeftover(join(dataDir, candidate.name, 'pid'), candidate.binary, candidate.name);
}

/** How long a leftover store may take to write what it holds and exit. */
const LEFTOVER_EXIT_MS = 60_000;

/**
 * A store left running by an npm start that was killed (kill -9 leaves its children behind) is
 * stopped the way npm start stops its own: SIGTERM, so that it writes the rows it holds in memory
 * first (victoria-metrics keeps about its last second of rows there: it answered 204 for them,
 * the flows' buffers have released them, and SIGKILL would lose them). It is not adopted: the new
 * start runs the store with its own settings (port, flags), and owns it.
 *
 * Then it is waited for until every thread of it has exited: its data folder's lock is released
 * only then, and a process whose main thread is a zombie may still have threads holding it
 * ("cannot acquire lock on flock.lock").
 */
async function stopLeftover(pidFile: string, binary: string, name: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  rmSync(pidFile, { force: true });
  const ours = () => {
    try {
      return Number.isInteger(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(binary);
    } catch {
      return false;
    }
  };
  if (!ours()) return;
  console.log(`Stopping the ${name} a killed npm start left running (pid ${pid}), so that it writes what it holds`);
  process.kill(pid, 'SIGTERM');
  if (await exited(pid, LEFTOVER_EXIT_MS)) return;
  console.warn(`[timeseries] the leftover ${name} (pid ${pid}) did not exit within ${LEFTOVER_EXIT_MS / 1000} s of SIGTERM: killed; its last rows may be lost`);
  process.kill(pid, 'SIGKILL');
  await exited(pid, LEFTOVER_EXIT_MS);
}

/** Waits until no thread of the process runs any more (all gone, or zombies nobody reaped); false after timeoutMs. */
async function exited(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!threadsRunning(pid)) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

function threadsRunning(pid: number): boolean {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return false;
  }
  return threads.some((thread) => {
    try {
      // "tid (name) state ...": the name may hold spaces and parentheses. Z: zombie, X: dead.
      const stat = readFileSync(`/proc/${pid}/task/${thread}/stat`, 'utf8');
      return !'ZX'.includes(stat[stat.lastIndexOf(')') + 2]);
    } catch {
      return false;
    }
  });
}
