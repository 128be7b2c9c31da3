/**
 * The time-series store `npm start` gives the flows: INFLUX_URL when it is set; otherwise a
 * managed victoria-metrics (or influxd 1.x) on loopback with its data beside the user directory;
 * otherwise none, said plainly, while the flows' writers report that no store is reachable and
 * buffers hold the points. The example flows write with the InfluxDB v1 API to the database
 * `iot`, which both stores accept.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  await stopLeftover(join(dir, 'pid'), candidate.binary);
  // Its own process group: Node-RED's writers flush to it while they stop on a Ctrl-C.
  const server = new ServerProcess(candidate.name, () => candidate.command(dir, host, port), dir, { ownProcessGroup: true });
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

/** A store left running by an npm start that was killed (kill -9 leaves its children behind). */
async function stopLeftover(pidFile: string, binary: string): Promise<void> {
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
  process.kill(pid, 'SIGKILL');
  // A dying process loses its memory (and /proc cmdline) before its files: its data lock is only
  // released once it is gone or a zombie.
  const exiting = () => {
    try {
      // /proc/<pid>/stat: "pid (name) state ...", the name may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat[stat.lastIndexOf(')') + 2] !== 'Z';
    } catch {
      return false;
    }
  };
  for (let waited = 0; exiting() && waited < 10_000; waited += 50) await sleep(50);
}
