/**
 * INFO's text: Redis's `field:value` lines under `# Section` headers, with the node's real
 * numbers. Clients read a few fields: ioredis waits at start-up while `loading` is not 0,
 * and tools show redis_version, connected_clients, used_memory and the keyspace line.
 *
 * redis_version says 7.0.0 because clients turn Redis 7 features on or off by it and pikv
 * answers the Redis 7 start-up commands they send (HELLO, CLIENT SETINFO, COMMAND DOCS);
 * pikv_version says what it really is.
 */
import { arch, release, type } from 'node:os';
import type { NodeStats } from '../stats.js';
import type { ServerConfig } from '../config.js';

export const PIKV_VERSION = '0.1.0';
export const REDIS_VERSION_CLAIMED = '7.0.0';

/** Counters the RESP front end keeps for INFO's stats section. */
export interface RespCounters {
  connections_received: number;
  connections_rejected: number;
  commands_processed: number;
}

export interface InfoSource {
  readonly config: ServerConfig;
  stats(): NodeStats;
  readonly resp_counters: RespCounters;
  /** The port RESP listens on (the real one when resp_port was 0). */
  readonly resp_port: number;
  /** True when this node is part of a pikv cluster (not Redis Cluster: clients see one node). */
  readonly clustered: boolean;
}

const SECTIONS = ['server', 'clients', 'memory', 'persistence', 'stats', 'keyspace', 'cluster'] as const;
type Section = (typeof SECTIONS)[number];

/** The sections INFO [section ...] asks for: none, "all", "default" or "everything" mean every one. */
function sectionsAsked(asked: string[]): Section[] {
  if (asked.length === 0) return [...SECTIONS];
  const wanted = new Set(asked.map((name) => name.toLowerCase()));
  if (wanted.has('all') || wanted.has('default') || wanted.has('everything')) return [...SECTIONS];
  return SECTIONS.filter((section) => wanted.has(section));
}

function human(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value}B` : `${value.toFixed(2)}${units[unit]}`;
}

function sectionLines(section: Section, source: InfoSource, stats: NodeStats): string[] {
  const { config } = source;
  switch (section) {
    case 'server':
      return [
        `redis_version:${REDIS_VERSION_CLAIMED}`, `pikv_version:${PIKV_VERSION}`, 'redis_mode:standalone',
        `os:${type()} ${release()} ${arch()}`, `arch_bits:${process.arch.endsWith('64') ? 64 : 32}`,
        `process_id:${process.pid}`, `tcp_port:${source.resp_port}`, `uptime_in_seconds:${stats.uptime_s}`,
        `uptime_in_days:${Math.floor(stats.uptime_s / 86_400)}`, `node_version:${process.version}`, `workers:${stats.workers}`,
      ];
    case 'clients':
      return [`connected_clients:${stats.connections}`, `maxclients:${config.connections_max}`, 'blocked_clients:0',
        `requests_inflight:${stats.requests_inflight}`];
    case 'memory':
      return [
        `used_memory:${stats.bytes_used}`, `used_memory_human:${human(stats.bytes_used)}`,
        `used_memory_rss:${stats.memory.rss_bytes}`, `used_memory_rss_human:${human(stats.memory.rss_bytes)}`,
        `maxmemory:${stats.bytes_capacity}`, `maxmemory_human:${human(stats.bytes_capacity)}`, 'maxmemory_policy:noeviction',
      ];
    case 'persistence':
      return ['loading:0', `aof_enabled:${config.data_dir === '' ? 0 : 1}`, `appendfsync:${config.fsync}`];
    case 'stats': {
      const gets = stats.per_worker.reduce((sum, worker) => sum + worker.gets, 0);
      const hits = stats.per_worker.reduce((sum, worker) => sum + worker.get_hits, 0);
      return [
        `total_connections_received:${source.resp_counters.connections_received}`,
        `total_commands_processed:${source.resp_counters.commands_processed}`,
        `rejected_connections:${source.resp_counters.connections_rejected}`,
        `keyspace_hits:${hits}`, `keyspace_misses:${gets - hits}`, `expired_keys:${stats.expired_keys}`, `total_ops:${stats.ops}`,
        `out_of_memory_errors:${stats.per_worker.reduce((sum, worker) => sum + worker.out_of_memory, 0)}`,
      ];
    }
    case 'keyspace':
      // Redis lists only databases that hold keys.
      // avg_ttl stays 0 (Redis estimates it from samples; pikv keeps no such estimate).
      return stats.keys > 0 ? [`db0:keys=${stats.keys},expires=${stats.expiring_keys},avg_ttl=0`] : [];
    case 'cluster':
      return ['cluster_enabled:0', `pikv_cluster:${source.clustered ? 1 : 0}`];
  }
}

const TITLES: Readonly<Record<Section, string>> = {
  server: 'Server', clients: 'Clients', memory: 'Memory', persistence: 'Persistence', stats: 'Stats', keyspace: 'Keyspace', cluster: 'Cluster',
};

/** The INFO reply's text for the sections asked for (unknown names are left out, as Redis does). */
export function infoText(source: InfoSource, asked: string[]): string {
  const sections = sectionsAsked(asked);
  if (sections.length === 0) return '';
  const stats = source.stats();
  return sections.map((section) => [`# ${TITLES[section]}`, ...sectionLines(section, source, stats)].join('\r\n')).join('\r\n\r\n') + '\r\n';
}
