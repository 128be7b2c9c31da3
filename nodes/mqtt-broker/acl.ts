/**
 * Topic access per device. A rule is an MQTT topic filter in which `{id}` stands for one topic
 * level holding a device id: `devices/{id}/#` lets device pump-1 use everything under
 * `devices/pump-1/`. A gateway may also use its sensors' topics: a level in the `{id}` position
 * that names a sensor registered under it. Subscriptions are allowed only when every topic they
 * can match is allowed, so `devices/+/#` is refused to a device that may use only its own.
 */

export const ID = '{id}';

/** Whether an MQTT filter matches a topic (`+` one level, `#` the rest; `$` topics only literally). */
export function matches(filter: readonly string[], topic: readonly string[]): boolean {
  for (let i = 0; i < filter.length; i++) {
    const level = filter[i];
    if (level === '#') return !(i === 0 && topic[0]?.startsWith('$'));
    if (i >= topic.length) return false;
    if (level === '+') {
      if (i === 0 && topic[0].startsWith('$')) return false;
      continue;
    }
    if (level !== topic[i]) return false;
  }
  return filter.length === topic.length;
}

/** Whether every topic `requested` can match is matched by `allowed`. */
export function covers(allowed: readonly string[], requested: readonly string[]): boolean {
  for (let i = 0; i < requested.length; i++) {
    const a = allowed[i];
    if (a === '#') return true;
    if (a === undefined) return false;
    const r = requested[i];
    if (r === '#') return false;
    if (r === '+') {
      if (a !== '+') return false;
      continue;
    }
    if (a !== '+' && a !== r) return false;
  }
  // `a/#` also matches `a` itself.
  return allowed.length === requested.length || (allowed.length === requested.length + 1 && allowed[requested.length] === '#');
}

interface Rule {
  levels: string[];
  /** The level holding {id}, or -1. */
  idAt: number;
}

function compile(rule: string): Rule {
  const levels = rule.split('/');
  return { levels, idAt: levels.indexOf(ID) };
}

function withId(rule: Rule, id: string): string[] {
  return rule.idAt < 0 ? rule.levels : rule.levels.map((l) => (l === ID ? id : l));
}

export interface Acl {
  /** The device a publish speaks for (the publisher, or one of its sensors), or undefined when not allowed. */
  publishAs(device: string, topic: string, rules?: readonly string[]): string | undefined;
  maySubscribe(device: string, filter: string, rules?: readonly string[]): boolean;
}

/**
 * Rules come from the broker's settings; a device registered with its own topics uses those
 * instead. `isSensorOf(gateway, id)` answers whether id is an enabled sensor under gateway.
 */
export function createAcl(publish: readonly string[], subscribe: readonly string[], isSensorOf?: (gateway: string, id: string) => boolean): Acl {
  const cache = new Map<string, Rule>();
  const rulesOf = (rules: readonly string[]) =>
    rules.map((r) => {
      let rule = cache.get(r);
      if (!rule) cache.set(r, (rule = compile(r)));
      return rule;
    });
  const publishRules = rulesOf(publish);
  const subscribeRules = rulesOf(subscribe);

  /** The device (or a sensor of it) these levels fit the rules for: `fits` is matches() for topics, covers() for filters. */
  function speaksFor(device: string, levels: string[], own: readonly string[] | undefined, fallback: Rule[], fits: (allowed: readonly string[], levels: readonly string[]) => boolean): string | undefined {
    const rules = own ? rulesOf(own) : fallback;
    for (const rule of rules) if (fits(withId(rule, device), levels)) return device;
    if (!isSensorOf) return undefined;
    for (const rule of rules) {
      const candidate = rule.idAt >= 0 ? levels[rule.idAt] : undefined;
      if (candidate && candidate !== '+' && candidate !== '#' && candidate !== device && fits(withId(rule, candidate), levels) && isSensorOf(device, candidate)) return candidate;
    }
    return undefined;
  }

  return {
    publishAs: (device, topic, own) => speaksFor(device, topic.split('/'), own, publishRules, matches),
    maySubscribe: (device, filter, own) => speaksFor(device, filter.split('/'), own, subscribeRules, covers) !== undefined,
  };
}
