/**
 * `npm run simulate -- <pattern|all> [--devices N] [--rate R] [--duration S] [--bad] [--seed N]`
 * plays realistic devices against the pattern flows of a running `npm start`: temperatures that
 * drift and sometimes run hot, batteries that decline, devices that go silent, gateways with their
 * sensors, a vendor cloud with packed payloads, partner platforms; with --bad, bad actors too.
 * It prints a summary line every 30 s and, at the end (or on Ctrl-C), the totals: what was sent,
 * acknowledged, refused and sent again.
 * `npm run simulate -- commands` plays MQTT devices that execute commands instead, against the
 * commands example's broker (flows/commands-mqtt.json, IOT_COMMANDS_MQTT_PORT).
 */
import { join, resolve } from 'node:path';
import { CommandedDevice } from '../simulator/commanded-device';
import { DeviceKeys, masterSecret } from '../simulator/credentials';
import { Random } from '../simulator/devices';
import { describeTotals, Simulation } from '../simulator/run';
import { DEFAULT_TARGET, PATTERNS, type PatternName } from '../simulator/scenarios';

const USAGE = `usage: npm run simulate -- <${PATTERNS.join('|')}|all|commands> [--devices N] [--rate R] [--duration S] [--bad] [--seed N] [--url URL]

  commands      MQTT devices pump-01, pump-02... that execute commands (set_interval, reboot,
                set_threshold, light) from the commands example's broker (IOT_COMMANDS_MQTT_PORT,
                default 1887); --rate is how often each reports until a set_interval changes it

  --devices N   devices (buttons, gateways, cameras...) per pattern (default 5)
  --rate R      rounds per second: each device sends once a round (default 1)
  --duration S  seconds of traffic (default 60; 0 runs until Ctrl-C)
  --bad         then bad actors: unsigned, forged, replayed, expired, unknown, oversized, trespassing
  --seed N      the random seed (default 1): the same seed plays the same devices
  --url URL     Node-RED's HTTP address (default $NODE_RED_URL or http://127.0.0.1:1880)`;

function parse(argv: string[]): { patterns: PatternName[]; commands: boolean; devices: number; rate: number; duration: number; bad: boolean; seed: number; url: string } {
  const [first, ...rest] = argv;
  if (!first || first === '--help') throw new Error(USAGE);
  const commands = first === 'commands';
  const patterns = commands ? [] : first === 'all' ? [...PATTERNS] : [first as PatternName];
  if (!patterns.every((p) => PATTERNS.includes(p))) throw new Error(`unknown pattern "${first}"\n${USAGE}`);
  const options = { patterns, commands, devices: 5, rate: 1, duration: 60, bad: false, seed: 1, url: process.env.NODE_RED_URL ?? DEFAULT_TARGET.http };
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    if (flag === '--bad') {
      options.bad = true;
      continue;
    }
    const value = rest[++i];
    const number = Number(value);
    if (flag === '--url') options.url = value;
    else if (!Number.isFinite(number) || number < 0) throw new Error(`${flag} needs a number, not "${value}"\n${USAGE}`);
    else if (flag === '--devices') options.devices = Math.max(1, Math.floor(number));
    else if (flag === '--rate') options.rate = number > 0 ? number : 1;
    else if (flag === '--duration') options.duration = number === 0 ? Infinity : number;
    else if (flag === '--seed') options.seed = Math.floor(number);
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  if (commands && options.bad) throw new Error(`--bad is for the patterns, not for commands\n${USAGE}`);
  return options;
}

/**
 * Devices that execute commands, until the duration ends or Ctrl-C: each command they execute is
 * logged, a summary line every 30 s, the totals at the end.
 */
async function simulateCommands(options: ReturnType<typeof parse>, keys: DeviceKeys): Promise<void> {
  const port = Number(process.env.IOT_COMMANDS_MQTT_PORT ?? 1887);
  const random = new Random(options.seed);
  const devices = Array.from({ length: options.devices }, (_, i) => {
    const id = `pump-${String(i + 1).padStart(2, '0')}`;
    return new CommandedDevice({ id, url: `mqtt://${DEFAULT_TARGET.brokerHost}:${port}`, apiKey: keys.apiKey(id), intervalMs: 1000 / options.rate, random: random.fork(), log: (line) => console.log(line) });
  });
  const summary = () =>
    devices.map((d) => `${d.id}: ${d.reported.length} readings, every ${d.settings.intervalMs / 1000} s, ${d.executed.length} commands executed${d.reboots ? `, ${d.reboots} reboots` : ''}`).join(' · ');
  console.log(`simulating ${options.devices} devices taking commands on mqtt://${DEFAULT_TARGET.brokerHost}:${port} (devices/<id>/commands), ${Number.isFinite(options.duration) ? `${options.duration} s` : 'until Ctrl-C'}`);
  await Promise.all(devices.map((d) => d.start()));
  const every = setInterval(() => console.log(`${new Date().toTimeString().slice(0, 8)} · ${summary()}`), 30_000);
  await new Promise<void>((resolve) => {
    const timer = Number.isFinite(options.duration) ? setTimeout(resolve, options.duration * 1000) : undefined;
    process.once('SIGINT', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  clearInterval(every);
  await Promise.all(devices.map((d) => d.stop()));
  console.log(`\ntotals\n  ${summary().split(' · ').join('\n  ')}`);
}

async function main(): Promise<void> {
  const options = parse(process.argv.slice(2));
  const dataDir = resolve(process.env.IOT_DATA_DIR ?? join(__dirname, '..', '..', '.data'));
  if (options.commands) return simulateCommands(options, new DeviceKeys(masterSecret(dataDir)));
  const simulation = new Simulation({
    ...options,
    keys: new DeviceKeys(masterSecret(dataDir)),
    target: { ...DEFAULT_TARGET, http: options.url.replace(/\/$/, '') },
    // An early excursion, so that alerts come within the first minute.
    overheatAt: { 0: 3 },
    log: (line) => console.log(line),
    urls: { 'Node-RED': options.url },
  });
  process.once('SIGINT', () => {
    console.log('\nstopping (Ctrl-C again to quit at once)');
    simulation.stop();
    process.once('SIGINT', () => process.exit(130));
  });
  console.log(`simulating ${options.patterns.join(', ')}: ${options.devices} devices each, ${options.rate} round(s)/s, ${Number.isFinite(options.duration) ? `${options.duration} s` : 'until Ctrl-C'}${options.bad ? ', then bad actors' : ''}`);
  const report = await simulation.run();
  console.log('\ntotals');
  for (const line of describeTotals(report.totals)) console.log(`  ${line}`);
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
